"""The picture behind ``longline cost``: each option's cost against events/s and against streams.

matplotlib is an optional extra (``longline[plot]``), imported only when a plot is asked for, and
used through ``Figure`` alone so that no global pyplot state or GUI backend is touched. Decimals
become floats here, for drawing only.
"""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

from longline.cost import (
    AXES,
    OPTIONS,
    CostError,
    PriceBook,
    Workload,
    axis_grid,
    cheapest_ranges,
    num,
    sweep,
)

__all__ = ["FORMATS", "PlotUnavailable", "plot"]

FORMATS = (".png", ".svg")
LABELS = {"events_per_second": "events per second (all streams)", "streams": "streams"}


class PlotUnavailable(CostError):
    """matplotlib is not installed."""


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailable(
            "plotting needs matplotlib: install longline[plot] (pip install 'longline[plot]')",
            "plot",
        ) from exc
    return Figure


def plot(w: Workload, book: PriceBook, path: str | Path, note: str = "") -> Path:
    """Draw both sweeps side by side into ``path`` (.png or .svg); returns the path written.

    ``note`` (the sizing figures the servers were priced with) goes under the title.
    """
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise CostError(f"--plot must end in {' or '.join(FORMATS)}, got '{target.name}'", "plot")
    figure = _figure_class()(figsize=(13, 6), layout="constrained")
    for axes, axis in zip(figure.subplots(1, 2), AXES, strict=True):
        # Log axes cannot show 0 events/s; the table covers that point.
        values = [v for v in axis_grid(axis) if v > 0]
        totals = sweep(w, book, axis, values)
        for key, costs in totals.items():
            points = [
                (float(v), float(c)) for v, c in zip(values, costs, strict=True) if c and c > 0
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, label=OPTIONS[key])
        for cheapest in cheapest_ranges(w, book, axis)[1:]:  # the ranges the text names
            axes.axvline(float(cheapest.start), color="grey", linestyle=":", linewidth=1)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(LABELS[axis])
        axes.set_ylabel(f"USD per {num(w.days)} days")
        axes.grid(True, which="both", alpha=0.3)
        held = (
            f"{num(w.streams)} stream(s)"
            if axis == "events_per_second"
            else f"{num(w.events_per_second)} events/s"
        )
        axes.set_title(f"{w.region}, {held}, {num(Decimal(w.event_size))} B events")
    figure.axes[0].legend(fontsize="small")
    title = "longline cost: cheapest option by workload (dotted: where it changes)"
    figure.suptitle(title)
    if note:
        figure.supxlabel(textwrap.fill(note, 170), fontsize=8)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target)
    except OSError as exc:
        raise CostError(f"--plot cannot write {target}: {exc}", "plot") from exc
    return target
