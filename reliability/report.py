"""Rows, the table printed by every run, and docs/reliability.md written by ``--full``.

The figures are kept per scenario family in docs/reliability.json (which command, commit, date
and machine produced them), so ``--full --only NAME`` re-measures one family and merges it into
the page instead of discarding the others' figures; the page says where each family came from.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Row:
    """One scenario's result. ``ok`` False when anything was lost, doubled, corrupted, leaked
    or otherwise failed (``failures`` says what)."""

    scenario: str
    injected: str
    produced: int = 0
    stored: int = 0
    lost: int = 0
    doubled: int = 0
    corrupted: int = 0
    peak_rss_mb: float = 0.0
    duration_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the scenario could not run here (not a pass)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.corrupted or self.failures)


HEAD = (
    "| scenario | injected | produced | stored | lost | doubled | corrupted | peak RSS | duration "
    "| result |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
)


def table(rows: list[Row]) -> str:
    out = HEAD
    for r in rows:
        rss = f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb else "-"
        result = "pass" if r.ok else "FAIL: " + "; ".join(r.failures or ["loss/duplicate"])
        if r.skipped and r.ok:
            result = f"not run: {r.skipped}"
        out += (
            f"| {r.scenario} | {r.injected} | {r.produced:,} | {r.stored:,} | {r.lost} "
            f"| {r.doubled} | {r.corrupted} | {rss} | {r.duration_s:.0f} s | {result} |\n"
        )
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ", load average {:.1f} {:.1f} {:.1f} at the end".format(*os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}{load}"
    )


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def details(rows: list[Row]) -> str:
    out = ""
    for r in rows:
        if r.notes or r.failures:
            out += f"\n**{r.scenario}**\n\n"
            for line in r.failures:
                out += f"- FAILURE: {line}\n"
            for line in r.notes:
                out += f"- {line}\n"
    return out


@dataclass
class FamilyRun:
    """One family's rows and where they came from (a part of a ``--full`` run, or all of it)."""

    rows: list[Row]
    command: str
    commit: str
    when: str
    minutes: float
    machine: str
    full: bool

    @staticmethod
    def now(rows: list[Row], command: str, full: bool, seconds: float) -> FamilyRun:
        return FamilyRun(rows, command, commit(), datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                         seconds / 60, machine(), full)


def load_runs(path: Path) -> dict[str, FamilyRun]:
    """The families recorded in ``path`` (none when it does not exist yet)."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {
        name: FamilyRun(**{**run, "rows": [Row(**r) for r in run["rows"]]})
        for name, run in raw.items()
    }


def save_runs(path: Path, runs: dict[str, FamilyRun]) -> None:
    path.write_text(json.dumps({name: asdict(run) for name, run in runs.items()}, indent=1) + "\n")


def render(runs: dict[str, FamilyRun], order: list[str], intro: str) -> str:
    """The page: intro, where each family's figures came from, one table, the details."""
    names = [n for n in order if n in runs] + [n for n in runs if n not in order]
    rows = [r for n in names for r in runs[n].rows]
    sizes = {"full" if runs[n].full else "CI-sized" for n in names}
    verdict = "all rows pass" if all(r.ok for r in rows) else "SOME ROWS FAIL"
    sources = "".join(
        f"- {n}: `{runs[n].command}`, commit `{runs[n].commit}`, {runs[n].when}, "
        f"{runs[n].minutes:.1f} min; {runs[n].machine}\n"
        for n in names
    )
    return (
        f"# Reliability campaign\n\n{intro}\n"
        f"## Figures ({' and '.join(sorted(sizes))} run, {verdict})\n\n"
        f"Each family of rows, the command that measured it, the commit and the machine:\n\n"
        f"{sources}\n{table(rows)}\n## Details\n{details(rows)}"
    )


def command_line() -> str:
    return "python -m reliability " + " ".join(sys.argv[1:])
