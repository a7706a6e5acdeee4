"""Each option's cost along one axis (events/s or streams), and where the cheapest one changes.

The plot draws the sweeps; ``ranges`` turns the changes into the ranges a user reads. Every
point is priced by ``compare`` itself, so the sweeps cannot disagree with the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal
from itertools import pairwise

from longline.cost.numbers import ceil
from longline.cost.options import compare, stream_steps
from longline.cost.prices import PriceBook
from longline.cost.result import OPTIONS
from longline.cost.workload import Workload

__all__ = [
    "AXES",
    "DENSE_STREAMS",
    "GRID_DENSITY",
    "Crossover",
    "Pricer",
    "axis_grid",
    "bisect",
    "crossovers",
    "lowest",
    "points",
    "sweep",
    "workload_at",
]

AXES = ("events_per_second", "streams")
GRID_DENSITY = 20
DENSE_STREAMS = 100  # every stream count up to this is priced: where Lambda's steps compete


def axis_grid(axis: str) -> list[Decimal]:
    """Log-spaced points, 20 a decade: 0.01..100 000 events/s or 1..10 000 streams.

    Events/s start at 0.01, not 0: below that, 1-GB volume steps make meaningless crossovers.
    The density decides the narrowest window of cheapness the events/s sweep can see (~12 %).
    """
    if axis == "events_per_second":
        return [Decimal(10) ** (Decimal(k) / GRID_DENSITY) for k in range(-40, 101)]
    grid = {ceil(Decimal(10) ** (Decimal(k) / GRID_DENSITY)) for k in range(81)}
    return [Decimal(p) for p in sorted(grid)]


def workload_at(w: Workload, axis: str, value: Decimal) -> Workload:
    """``w`` moved to ``value`` along ``axis``; the other axis is held."""
    if axis == "streams":
        return replace(w, streams=int(value))
    return replace(w, events_per_second=value)


def lowest(totals: dict[str, Decimal | None]) -> tuple[str, ...]:
    """The keys with the lowest total (several on a tie, none if none is priced)."""
    priced = {k: t for k, t in totals.items() if t is not None}
    if not priced:
        return ()
    low = min(priced.values())
    return tuple(k for k, t in priced.items() if t == low)


class Pricer:
    """Each option's total at points of one axis, priced once per point however often asked."""

    def __init__(self, w: Workload, book: PriceBook, axis: str) -> None:
        self.w, self.book, self.axis = w, book, axis
        self._totals: dict[Decimal, dict[str, Decimal | None]] = {}

    def totals(self, value: Decimal) -> dict[str, Decimal | None]:
        """Option key -> total at ``value``, None where the option cannot be priced."""
        if value not in self._totals:
            cmp = compare(workload_at(self.w, self.axis, value), self.book)
            self._totals[value] = {o.key: None if o.error else o.total for o in cmp.options}
        return self._totals[value]

    def cheapest(self, value: Decimal) -> tuple[str, ...]:
        return lowest(self.totals(value))


def sweep(
    w: Workload, book: PriceBook, axis: str, values: Sequence[Decimal]
) -> dict[str, list[Decimal | None]]:
    """Each option's total along ``axis`` (None where it cannot be priced)."""
    pricer = Pricer(w, book, axis)
    return {k: [pricer.totals(v)[k] for v in values] for k in OPTIONS}


def bisect(pricer: Pricer, lo: Decimal, hi: Decimal) -> tuple[Decimal, Decimal]:
    """Narrow ``lo``..``hi`` to where the cheapest option stops being what it is at ``lo``.

    Streams end one apart; events/s 40 geometric halvings apart (far under 1e-9 relative).
    Returns the last point found with ``lo``'s cheapest and the first one without.
    """
    streams = pricer.axis == "streams"
    first = pricer.cheapest(lo)
    for _ in range(40):
        if streams and hi - lo <= 1:
            break
        mid = ((lo + hi) / 2).to_integral_value(ROUND_FLOOR) if streams else (lo * hi).sqrt()
        if pricer.cheapest(mid) == first:
            lo = mid
        else:
            hi = mid
    return lo, hi


def points(pricer: Pricer) -> list[Decimal]:
    """The points priced along the axis: the grid, and both sides of every change found.

    Along streams, every count up to ``DENSE_STREAMS`` and every step of the instance and task
    staircases (``stream_steps``) is priced too: between those, the options' totals are straight
    lines, so no change hides between two points. Where a change is found, bisection runs again
    on what is left of the interval, so two changes between the same points are both found.
    """
    grid = axis_grid(pricer.axis)
    found = set(grid)
    if pricer.axis == "streams":
        top = int(grid[-1])
        steps = stream_steps(pricer.w, pricer.book, top) | set(range(1, DENSE_STREAMS + 1))
        found |= {Decimal(n) for n in steps if n <= top}
    todo = list(pairwise(sorted(found)))
    while todo:
        lo, hi = todo.pop()
        if pricer.cheapest(lo) == pricer.cheapest(hi):
            continue
        last, first = bisect(pricer, lo, hi)
        found |= {last, first}
        if first < hi:
            todo.append((first, hi))
    return sorted(found)


@dataclass(frozen=True)
class Crossover:
    """From ``at`` on along ``axis``, ``after`` is cheapest, not ``before`` (ties: several)."""

    axis: str
    at: Decimal
    before: tuple[str, ...]
    after: tuple[str, ...]


def crossovers(
    w: Workload, book: PriceBook, axis: str, pricer: Pricer | None = None
) -> list[Crossover]:
    """Every change of the cheapest option along ``axis`` (see ``points``).

    ``at`` is exact to the stream, or to a relative 1e-9 in events/s. Along events/s a window of
    cheapness that starts and ends between two grid points (~12 % apart) can still be missed.
    ``pricer`` (for ``w`` and ``axis``) lets a caller share the points already priced.
    """
    pricer = pricer or Pricer(w, book, axis)
    found: list[Crossover] = []
    for lo, hi in pairwise(points(pricer)):
        before, after = pricer.cheapest(lo), pricer.cheapest(hi)
        if before != after and before and after:
            found.append(Crossover(axis, hi, before, after))
    return found
