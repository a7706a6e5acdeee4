"""Collect per-run figures and summarise them: median with min-max, and paired ratios."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, TypeVar

V = TypeVar("V")


def _replace(mine: dict[str, V], theirs: dict[str, V], stale: set[str]) -> dict[str, V]:
    kept = {n: v for n, v in mine.items() if n not in stale and n not in theirs}
    return kept | theirs


def summary(values: list[float]) -> dict[str, Any]:
    """``{"runs": [...], "median": m, "min": lo, "max": hi}``."""
    return {
        "runs": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


@dataclass
class Collected:
    """Figures by name and run; a run is one pass over every scenario.

    ``groups`` files each figure under the scenario group that was running (``group``) when it
    was recorded, so a partial capture (``--only``) knows which published figures it replaces.
    """

    rates: dict[str, dict[int, float]] = field(default_factory=dict)
    details: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    group: str = ""

    def rate(self, name: str, run: int, value: float) -> None:
        """Record events/s of ``name`` in ``run``."""
        self.rates.setdefault(name, {})[run] = value
        self._file(name)

    def detail(self, name: str, run: int, value: dict[str, Any]) -> None:
        """Record a structured figure (latency percentiles, idle memory) of ``name``."""
        self.details.setdefault(name, {})[run] = value
        self._file(name)

    def _file(self, name: str) -> None:
        if self.group:
            self.groups[name] = self.group

    def rate_summaries(self) -> dict[str, dict[str, Any]]:
        """Every rate summarised across runs."""
        return {name: summary(list(runs.values())) for name, runs in self.rates.items()}

    def detail_summaries(self) -> dict[str, dict[str, Any]]:
        """Every numeric field of every detail summarised across runs (``runs`` kept whole)."""
        out: dict[str, dict[str, Any]] = {}
        for name, runs in self.details.items():
            items = list(runs.values())
            fields: dict[str, Any] = {"runs": items}
            for key in items[0]:
                numbers = [r[key] for r in items if isinstance(r.get(key), int | float)]
                if len(numbers) == len(items):
                    fields[key] = summary([float(x) for x in numbers])
            out[name] = fields
        return out

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Collected:
        """Rebuild the per-run figures from a results document (``python -m benchmarks
        report`` re-renders without measuring again)."""
        got = cls()
        for name, s in doc["rates"].items():
            got.rates[name] = dict(enumerate(s["runs"]))
        for name, s in doc["details"].items():
            got.details[name] = dict(enumerate(s["runs"]))
        got.groups = dict(doc.get("groups", {}))
        return got

    def replace_groups(self, fresh: Collected, groups: set[str]) -> None:
        """Drop every figure filed under ``groups`` or named in ``fresh``, then take ``fresh``'s
        figures: the published results with only the re-measured groups replaced."""
        stale = {n for n, g in self.groups.items() if g in groups}
        self.rates = _replace(self.rates, fresh.rates, stale)
        self.details = _replace(self.details, fresh.details, stale)
        self.groups = {n: g for n, g in self.groups.items() if g not in groups} | fresh.groups

    def cpu_ratio(self, num: str, den: str) -> dict[str, Any] | None:
        """Paired per-run CPU cost of ``den`` per event over that of ``num``: the throughput
        ratio the two would have if CPU were the only limit and nothing else ran."""
        a, b = self.details.get(f"cpu.{num}", {}), self.details.get(f"cpu.{den}", {})
        runs = sorted(set(a) & set(b))
        values = [
            b[r]["us_per_event"] / a[r]["us_per_event"] for r in runs if a[r]["us_per_event"] > 0
        ]
        return summary(values) if values else None

    def ratio(self, num: str, den: str) -> dict[str, Any] | None:
        """Paired per-run ``num / den`` summarised, or None when either is missing."""
        a, b = self.rates.get(num, {}), self.rates.get(den, {})
        runs = sorted(set(a) & set(b))
        if not runs:
            return None
        return summary([a[r] / b[r] for r in runs if b[r] > 0])
