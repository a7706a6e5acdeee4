"""Rows, the table printed by every run, and docs/reliability.md written by ``--full``."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
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


def render(rows: list[Row], command: str, full: bool, total_s: float, intro: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    size = "full" if full else "CI-sized"
    verdict = "all rows pass" if all(r.ok for r in rows) else "SOME ROWS FAIL"
    return (
        f"# Reliability campaign\n\n{intro}\n"
        f"## Figures ({size} run, {verdict})\n\n"
        f"- command: `{command}`\n- commit: `{commit()}`, {when}, {total_s / 60:.1f} min\n"
        f"- machine: {machine()}\n\n"
        f"{table(rows)}\n## Details\n{details(rows)}"
    )


def command_line() -> str:
    return "python -m reliability " + " ".join(sys.argv[1:])
