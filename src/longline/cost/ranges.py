"""Which option is cheapest over which range of an axis, in words a user can act on.

Options whose costs step (instances, tasks) trade places many times as streams grow; listing
every change buries the answer. Neighbouring ranges are merged when their options stay within
``TOLERANCE`` of the cheapest, and ranges where the same options keep coming back are merged
further until at most ``MAX_RANGES`` are left. A merged range names all its options and the
most any of them costs above the cheapest, so no merge hides a difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal

from longline.cost.numbers import num
from longline.cost.prices import PriceBook
from longline.cost.result import OPTIONS
from longline.cost.sweep import Crossover, Pricer, crossovers, lowest, points
from longline.cost.workload import Workload

__all__ = [
    "MAX_RANGES",
    "TOLERANCE",
    "CheapestRange",
    "Summary",
    "cheapest_ranges",
    "in_words",
    "merge_ranges",
    "summary",
]

TOLERANCE = Decimal("0.05")
MAX_RANGES = 4

Totals = dict[str, Decimal | None]


@dataclass(frozen=True)
class CheapestRange:
    """From ``start`` to ``end`` along ``axis``, one of ``options`` is the cheapest.

    ``end`` is the last stream of the range, or the events/s where the next range starts.
    ``spread`` is the most any of ``options`` costs above the cheapest at the points priced in
    the range, as a fraction (0: tied throughout); None when no option can be priced there.
    """

    axis: str
    start: Decimal
    end: Decimal
    options: tuple[str, ...]
    spread: Decimal | None


@dataclass(frozen=True)
class Summary:
    """One axis in full: every change (the plot's and JSON's), the merged ranges and the words."""

    crossovers: list[Crossover]
    ranges: list[CheapestRange]
    text: str


@dataclass(frozen=True)
class _Run:
    """Consecutive points ``first``..``last`` (indices), the options cheapest somewhere there,
    the regions they belong to, and each option's worst excess over those points."""

    first: int
    last: int
    options: frozenset[str]
    regions: frozenset[int]
    worst: dict[str, Decimal | None]

    @property
    def spread(self) -> Decimal | None:
        values = [self.worst.get(k) for k in self.options]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)


def _excess(totals: Totals) -> Totals:
    """Each option's total above the cheapest, as a fraction; None where it is not priced."""
    low = min((t for t in totals.values() if t is not None), default=None)
    out: Totals = {}
    for key, total in totals.items():
        if total is None or low is None:
            out[key] = None
        elif low > 0:
            out[key] = total / low - 1
        else:
            out[key] = Decimal(0) if total == low else None
    return out


def _worst(a: Totals, b: Totals) -> Totals:
    """Per option, the larger excess of two stretches; None if either did not price it."""
    out: Totals = {}
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        out[key] = None if x is None or y is None else max(x, y)
    return out


def _merge(a: _Run, b: _Run) -> _Run:
    return _Run(
        a.first, b.last, a.options | b.options, a.regions | b.regions, _worst(a.worst, b.worst)
    )


def _regions(kinds: list[frozenset[str]]) -> list[int]:
    """One region from each option's first run to its last: where options keep coming back."""
    region = list(range(len(kinds)))
    for key in sorted(set().union(*kinds)):
        where = [i for i, kind in enumerate(kinds) if key in kind]
        for i in range(where[0], where[-1] + 1):
            region[i] = region[where[0]]
    return region


def _runs(at: Sequence[Decimal], totals: Sequence[Totals]) -> list[_Run]:
    """Maximal stretches of points with the same cheapest option(s)."""
    winners = [frozenset(lowest(t)) for t in totals]
    runs: list[_Run] = []
    for i, t in enumerate(totals):
        if runs and winners[i] == runs[-1].options:
            runs[-1] = _merge(runs[-1], _Run(i, i, winners[i], frozenset(), _excess(t)))
        else:
            runs.append(_Run(i, i, winners[i], frozenset(), _excess(t)))
    regions = _regions([r.options for r in runs])
    return [replace(r, regions=frozenset({g})) for r, g in zip(runs, regions, strict=True)]


def _within_tolerance(runs: list[_Run], tolerance: Decimal) -> list[_Run]:
    """Merge neighbours while all their options stay within ``tolerance``: smallest spread
    first, the later pair on a tie (where steps weigh less)."""
    while True:
        best: tuple[Decimal, int] | None = None
        for i in range(len(runs) - 1):
            spread = _merge(runs[i], runs[i + 1]).spread
            if spread is not None and spread <= tolerance and (best is None or spread <= best[0]):
                best = (spread, i)
        if best is None:
            return runs
        i = best[1]
        runs = [*runs[:i], _merge(runs[i], runs[i + 1]), *runs[i + 2 :]]


def _fewer(
    runs: list[_Run], starts: list[Decimal], bounds: list[Decimal], max_ranges: int
) -> list[_Run]:
    """At most ``max_ranges`` ranges (or as few as regions allow), merging only runs linked by a
    region, with the least spread weighted by the share of the log axis each range covers.

    Run ``i`` covers ``starts[i]`` up to ``bounds[i]`` (the next run's start); the cost of a
    range is its spread x ln(end / start), and the least total is found exactly (dynamic
    programming over where each range starts).
    """
    n = len(runs)
    if n <= max_ranges:
        return runs
    cost: dict[tuple[int, int], Decimal] = {}
    for i in range(n):
        acc = runs[i]
        for j in range(i, n):
            if j > i:
                if not acc.regions & runs[j].regions:
                    break
                acc = _merge(acc, runs[j])
            spread = acc.spread
            if spread is None and j > i:
                break
            width = (bounds[j] / starts[i]).ln()
            cost[i, j] = (spread or 0) * width
    # best[k][j]: least cost covering runs[:j] with k ranges, and where its last range starts
    best: list[dict[int, tuple[Decimal, int]]] = [{0: (Decimal(0), 0)}]
    for k in range(1, n + 1):
        row: dict[int, tuple[Decimal, int]] = {}
        for (i, j), c in cost.items():
            if i in best[k - 1]:
                total = best[k - 1][i][0] + c
                if j + 1 not in row or total < row[j + 1][0]:
                    row[j + 1] = (total, i)
        best.append(row)
        if k >= max_ranges and any(n in r for r in best[1:]):
            break
    # as few over max_ranges as possible, then the least cost, then the most detail
    count = min(
        (k for k in range(1, len(best)) if n in best[k]),
        key=lambda k: (max(k - max_ranges, 0), best[k][n][0], -k),
    )
    out: list[_Run] = []
    j = n
    while count:
        i = best[count][j][1]
        merged = runs[i]
        for r in runs[i + 1 : j]:
            merged = _merge(merged, r)
        out.insert(0, merged)
        j, count = i, count - 1
    return out


def merge_ranges(
    axis: str,
    at: Sequence[Decimal],
    totals: Sequence[Totals],
    tolerance: Decimal = TOLERANCE,
    max_ranges: int = MAX_RANGES,
) -> list[CheapestRange]:
    """Ranges of the cheapest option(s) from each option's total at the points ``at``
    (positive, ascending; ``totals[i]`` maps option key -> total at ``at[i]``, None: unpriced).

    First, neighbouring ranges merge when every option of both stays within ``tolerance`` of
    the cheapest throughout. Then, if more than ``max_ranges`` are left, ranges where the same
    options keep coming back (a region: from an option's first range to its last) merge into
    ``max_ranges``, choosing the merges that leave the least spread, weighted by the share of
    the (logarithmic) axis each range covers. A change of regime, options that never come back,
    is only merged within tolerance, so more than ``max_ranges`` ranges can remain.
    """
    runs = _within_tolerance(_runs(at, totals), tolerance)
    top = at[-1] + (1 if axis == "streams" else 0)
    bounds = [*(at[r.first] for r in runs[1:]), top]
    runs = _fewer(runs, [at[r.first] for r in runs], bounds, max_ranges)
    ranges = []
    for n, run in enumerate(runs):
        end = at[-1]
        if n + 1 < len(runs):
            end = at[runs[n + 1].first] - (1 if axis == "streams" else 0)
        keys = tuple(k for k in OPTIONS if k in run.options)
        ranges.append(CheapestRange(axis, at[run.first], end, keys, run.spread))
    return ranges


def cheapest_ranges(
    w: Workload,
    book: PriceBook,
    axis: str,
    tolerance: Decimal = TOLERANCE,
    max_ranges: int = MAX_RANGES,
    pricer: Pricer | None = None,
) -> list[CheapestRange]:
    """``merge_ranges`` over the points ``sweep.points`` prices along ``axis``."""
    pricer = pricer or Pricer(w, book, axis)
    at = points(pricer)
    return merge_ranges(axis, at, [pricer.totals(x) for x in at], tolerance, max_ranges)


def _label(r: CheapestRange) -> str:
    if not r.options:
        return "no option can be priced"
    if len(r.options) == 1:
        return OPTIONS[r.options[0]]
    numbers = "/".join(OPTIONS[k].split(".")[0] for k in r.options)
    if not r.spread:
        return f"{numbers} (tied)"
    percent = (r.spread * 100).to_integral_value(ROUND_CEILING)
    return f"{numbers} (within {num(percent)} %)"


def _span(r: CheapestRange) -> str:
    if r.axis == "streams":
        if r.start == r.end:
            return f"{num(r.start)} stream" + ("" if r.start == 1 else "s")
        return f"{num(r.start)} to {num(r.end)} streams"
    digits = 3  # as many significant figures as tell the two ends apart
    while digits < 12 and f"{r.start:.{digits}g}" == f"{r.end:.{digits}g}":
        digits += 1
    lo, hi = (num(Decimal(f"{x:.{digits}g}")) for x in (r.start, r.end))
    return f"{lo} to {hi} events/s"


def summary(w: Workload, book: PriceBook, axis: str) -> Summary:
    """Every change, the merged ranges and their words along ``axis``.

    Along events/s the number of streams is held; along streams the total events/s is held.
    """
    pricer = Pricer(w, book, axis)
    found = crossovers(w, book, axis, pricer)
    ranges = cheapest_ranges(w, book, axis, pricer=pricer)
    unit = "events/s" if axis == "events_per_second" else "streams"
    if all(not r.options for r in ranges):
        return Summary(found, ranges, f"No option can be priced along {unit}.")
    held = (
        f"{num(w.streams)} stream(s)"
        if axis == "events_per_second"
        else f"{num(w.events_per_second)} events/s in total"
    )
    spans = [_span(r) for r in ranges]
    width = max(len(s) for s in spans)
    lines = [f"Cheapest by {unit}, with {held}:"]
    lines += [f"  {s:<{width}}  {_label(r)}" for s, r in zip(spans, ranges, strict=True)]
    if any(len(r.options) > 1 and r.spread for r in ranges):
        lines.append(
            "  (a/b within N %: each is the cheapest somewhere in the range, "
            "none costs more than N % above the cheapest there)"
        )
    return Summary(found, ranges, "\n".join(lines))


def in_words(w: Workload, book: PriceBook, axis: str) -> tuple[list[Crossover], str]:
    """The crossovers along ``axis`` and the ranges in words (see ``summary``)."""
    s = summary(w, book, axis)
    return s.crossovers, s.text
