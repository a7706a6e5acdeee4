"""What a healthy run says at INFO: a summary every ``log_summary_interval`` and one at exit.

A line per stream (events/s, duplicates, quarantined, reconnects since the last summary) and
a line per processor (delivered, failed attempts, dead-lettered). So that logs scale with the
number of streams, a run of more than ``MAX_LINES`` streams logs one total line plus a line
for each stream that is not live (periodic) or that failed (final).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from longline.core.units import format_duration
from longline.engine.stats import StreamStats

__all__ = ["MAX_LINES", "LaneCounts", "Periodic", "dispatch_lines", "stream_lines"]

log = logging.getLogger("longline.summary")
MAX_LINES = 20


@dataclass(slots=True)
class _Counts:
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reconnects: int = 0

    @classmethod
    def of(cls, s: StreamStats) -> _Counts:
        return cls(s.events, s.duplicates, s.quarantined, s.reconnects)

    def minus(self, other: _Counts) -> _Counts:
        return _Counts(
            self.events - other.events,
            self.duplicates - other.duplicates,
            self.quarantined - other.quarantined,
            self.reconnects - other.reconnects,
        )

    def add(self, other: _Counts) -> None:
        self.events += other.events
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.reconnects += other.reconnects

    def text(self) -> str:
        return (
            f"{self.events} events, {self.duplicates} duplicates, "
            f"{self.quarantined} quarantined, {self.reconnects} reconnects"
        )


def stream_lines(
    stats: Mapping[str, StreamStats],
    before: dict[str, Any] | None,
    seconds: float,
) -> list[str]:
    """Summary lines over ``seconds``: since ``before`` (updated in place), or the whole run
    when ``before`` is None (the final summary)."""
    final = before is None
    span = _span(seconds)
    total, lines, live = _Counts(), [], 0
    for name, s in stats.items():
        now = _Counts.of(s)
        delta = now if before is None else now.minus(before.get(name, _Counts()))
        if before is not None:
            before[name] = now
        total.add(delta)
        live += s.state == "live"
        rate = delta.events / seconds if seconds > 0 else 0.0
        where = f"{s.state} after {span}" if final else f"{s.state}, last {span}"
        reason = f" ({s.reason})" if s.reason and s.state != "live" else ""
        show = len(stats) <= MAX_LINES or s.state == "failed" or (not final and s.state != "live")
        left = f", {s.uncommitted} uncommitted" if final and s.uncommitted else ""
        if show:
            lines.append(
                f"stream {name}: {where}{reason}: {rate:.1f} events/s, {delta.text()}{left}"
            )
    if len(stats) > 1:
        rate = total.events / seconds if seconds > 0 else 0.0
        head = "run ended after" if final else "run, last"
        lines.insert(
            0,
            f"{head} {span}: {len(stats)} streams ({live} live): {rate:.1f} events/s, "
            f"{total.text()}",
        )
    return lines


def _span(seconds: float) -> str:
    return format_duration(round(seconds) if seconds >= 10 else round(seconds, 1))


class LaneCounts(Protocol):
    """What a processor lane reports (the dispatcher's ``DeliveryStats``); a protocol so the
    engine does not import the delivery layer that imports it."""

    @property
    def delivered(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def state(self) -> str: ...


@dataclass(slots=True)
class _Delivery:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def dispatch_lines(
    stats: Mapping[tuple[str, str], LaneCounts],
    before: dict[str, Any] | None,
    seconds: float,
) -> list[str]:
    """One line per processor (all its lanes): delivered, failed attempts, dead-lettered."""
    final = before is None
    span = _span(seconds)
    per: dict[str, _Delivery] = {}
    states: dict[str, set[str]] = {}
    for (proc, _), s in stats.items():
        d = per.setdefault(proc, _Delivery())
        d.delivered += s.delivered
        d.failed += s.retries
        d.dead += s.dead
        states.setdefault(proc, set()).add(s.state)
    lines = []
    for proc, now in per.items():
        old = _Delivery() if before is None else before.get(proc, _Delivery())
        if before is not None:
            before[proc] = now
        state = "failed" if "failed" in states[proc] else ("stopped" if final else "running")
        where = f"{state} after {span}" if final else f"last {span}"
        lines.append(
            f"processor {proc}: {where}: {now.delivered - old.delivered} delivered, "
            f"{now.failed - old.failed} failed attempts, {now.dead - old.dead} dead-lettered"
        )
    return lines


class Periodic:
    """Logs ``lines(before, seconds)`` every ``interval`` seconds (0: never) and, at ``stop``,
    the whole-run summary ``lines(None, seconds)``."""

    def __init__(
        self, interval: float, lines: Callable[[dict[str, Any] | None, float], list[str]]
    ) -> None:
        self.interval = interval
        self.lines = lines
        self.started = time.monotonic()
        self._before: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="log-summary")

    async def _loop(self) -> None:
        last = self.started
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            try:
                self._log(self.lines(self._before, now - last))
            except Exception:  # a summary must never stop the run
                log.exception("summary failed")
            last = now

    async def stop(self) -> None:
        """End the periodic lines and log the final summary."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._log(self.lines(None, time.monotonic() - self.started))

    @staticmethod
    def _log(lines: list[str]) -> None:
        for line in lines:
            log.info("%s", line)
