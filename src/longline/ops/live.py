"""What the operators' listener shows: the live figures of this process, read when asked.

``OpsView`` reads the runner's ``StreamStats``, writers and supervisors and the dispatcher's
lane stats at the moment of a scrape or a page tick, so capture pays nothing for being watched.
Counters continue from the store's totals read when the view starts (a restart does not reset
the series to 0); a stream started again in the same process (worker mode) folds its previous
run's figures into its base, so every counter only grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from longline.config import Config
from longline.engine.stats import StreamStats
from longline.stores.base import Outbox

if TYPE_CHECKING:
    from longline.delivery.dispatcher import Dispatcher
    from longline.engine.runner import Runner

__all__ = ["LaneSample", "OpsView", "Reload", "Sample", "StreamSample"]

Reload = Callable[[], Awaitable[str]]
"""What ``POST /api/reload`` calls (the same as SIGHUP); returns a line saying what changed."""

DEAD_LETTER_COUNT_LIMIT = 100_000
STORE_PROBE_TIMEOUT = 2.0
HEADS_MAX_AGE = 1.0  # dispatch mode: the stored heads are re-read at most this often
_NO_CAUSES: dict[str, int] = {}  # shared by every stream that never reconnected (read-only)


@dataclass(slots=True)
class _Base:
    """What a stream's counters start from in this process."""

    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reconnects: int = 0
    rotations: int = 0
    bytes_received: int = 0
    causes: Counter[str] = field(default_factory=Counter)

    def fold(self, st: StreamStats) -> None:
        """Add the figures of a run of the stream that has been replaced by a new one."""
        self.events += st.events
        self.duplicates += st.duplicates
        self.quarantined += st.quarantined
        self.reconnects += st.reconnects
        self.rotations += st.rotations
        self.bytes_received += st.bytes_received
        self.causes.update(st.reconnect_causes or {})


@dataclass(slots=True)  # not frozen: a frozen dataclass is slower to make (10,000 a tick)
class StreamSample:
    """One stream's figures at one moment (counters over the store's life)."""

    name: str
    state: str
    reason: str | None
    events: int
    duplicates: int
    quarantined: int
    reconnects: int
    causes: dict[str, int]  # reconnects by cause, plus "rotation" (make-before-break)
    connections: int
    up: bool
    last_event_at: float | None
    bytes_received: int
    pending: int
    unready: str | None  # why /readyz fails for it (failed, or down for too long)


@dataclass(frozen=True, slots=True)
class LaneSample:
    """One processor lane (processor, stream)."""

    processor: str
    stream: str
    state: str
    delivered: int
    dead: int
    lag: int
    cursor: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Sample:
    taken_at: float
    streams: list[StreamSample]
    lanes: list[LaneSample]
    tasks: int = 0  # asyncio tasks alive on the process's loop (a leak grows it)


class OpsView:
    """The live figures of a runner (``longline run``) and/or a dispatcher (``dispatch``)."""

    def __init__(
        self,
        config: Config,
        store: Outbox,
        *,
        runner: Runner | None = None,
        dispatcher: Dispatcher | None = None,
        reload: Reload | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.runner = runner
        self.dispatcher = dispatcher  # processors beside capture (longline.App), or alone
        self.reload = reload
        self._streams = {s.name: s for s in config.streams}
        self._base: dict[str, _Base] = {}
        self._current: dict[str, StreamStats] = {}
        self._lane_base: dict[tuple[str, str], tuple[int, int]] = {}  # (delivered, dead)
        self._heads: dict[str, int] = {}  # last stored seq per stream (dispatch mode)
        self._heads_at = 0.0
        self._cursors: dict[str, tuple[int, str | None]] = {}  # events seen -> checkpoint
        self._cursor_turn = 0

    async def start(self) -> None:
        """Read the store's totals and the processors' cursors that the counters continue."""
        totals = await _totals(self.store)
        for name in self._streams:
            t = totals.get(name, {})
            base = self._base[name] = _Base(
                events=t.get("events", 0),
                duplicates=t.get("duplicates", 0),
                quarantined=t.get("quarantined", 0),
                reconnects=t.get("reconnects", 0),
            )
            if base.reconnects:  # the store keeps how many, not why
                base.causes["unknown"] = base.reconnects
        self._heads, self._heads_at = {n: t.get("events", 0) for n, t in totals.items()}, 0.0
        dispatcher = self.dispatcher
        if dispatcher is None:
            return
        for proc in {p for p, _ in dispatcher.stats}:
            dead = Counter(
                d.stream
                for d in await self.store.dead_letters(proc, 0, DEAD_LETTER_COUNT_LIMIT)
            )
            for p, stream in dispatcher.stats:
                if p == proc:
                    cursor = await self.store.delivery_cursor(proc, stream)
                    self._lane_base[proc, stream] = (max(0, cursor - dead[stream]), dead[stream])

    # -- sampling -----------------------------------------------------------------------

    async def sample(self) -> Sample:
        """Every stream's and lane's figures now (reads the store only in dispatch mode)."""
        self._follow_reload()
        now = time.time()
        streams = self._sample_streams(now)
        heads = {s.name: s.events for s in streams}
        if self.dispatcher is not None and self.runner is None:
            heads = await self._stored_heads(now)
        tasks = len(asyncio.all_tasks())  # on the loop: counted here, not in the render thread
        return Sample(now, streams, self._sample_lanes(heads), tasks)

    def _follow_reload(self) -> None:
        """After a live reload: the new config's streams (for readiness)."""
        owner = self.runner if self.runner is not None else self.dispatcher
        if owner is None or owner.config is self.config:
            return
        self.config = owner.config
        self._streams = {s.name: s for s in self.config.streams}

    def _sample_streams(self, now: float) -> list[StreamSample]:
        runner = self.runner
        if runner is None:
            return []
        out = []
        for name, st in list(runner.stats.items()):
            base = self._base.get(name)
            if base is None:  # a stream the config did not name when the view started
                base = self._base[name] = _Base()
            old = self._current.get(name)
            if old is not st:
                if old is not None:
                    base.fold(old)
                self._current[name] = st
            sup = runner.supervisors.get(name)
            writer = runner.writers.get(name)
            live_bytes = sum(c.rx_bytes for c in sup.open) if sup is not None and sup.open else 0
            rotations = base.rotations + st.rotations
            causes: dict[str, int] = _NO_CAUSES
            if base.causes or st.reconnect_causes or rotations:
                causes = Counter(base.causes)
                causes.update(st.reconnect_causes or {})
                if rotations:
                    causes["rotation"] = rotations
            out.append(
                StreamSample(
                    name=name,
                    state=st.state,
                    reason=st.reason,
                    events=base.events + st.events,
                    duplicates=base.duplicates + st.duplicates,
                    quarantined=base.quarantined + st.quarantined,
                    reconnects=base.reconnects + st.reconnects,
                    causes=causes,
                    connections=st.connections,
                    up=st.state == "live" and st.connections > 0,
                    last_event_at=st.last_event_at,
                    bytes_received=base.bytes_received + st.bytes_received + live_bytes,
                    pending=writer.uncommitted if writer is not None else 0,
                    unready=self._unready(name, st, now),
                )
            )
        return out

    def _unready(self, name: str, st: StreamStats, now: float) -> str | None:
        """Why this stream makes the process unready: failed, or without a live connection
        for longer than its ``stall_timeout`` plus the longest backoff allow."""
        if st.state == "failed":
            return f"failed: {st.reason}" if st.reason else "failed"
        if st.state not in ("connecting", "backing-off"):
            return None
        cfg = self._streams.get(name)
        down = st.down_since
        if cfg is None or down is None:
            return None
        allowed = cfg.stall_timeout + cfg.backoff.max
        if now - down <= allowed:
            return None
        why = f"no live connection for {_duration(now - down)} (allowed {allowed:g}s)"
        return f"{why}: {st.reason}" if st.reason else why

    def _sample_lanes(self, heads: dict[str, int]) -> list[LaneSample]:
        dispatcher = self.dispatcher
        if dispatcher is None:
            return []
        out = []
        for (proc, stream), ls in list(dispatcher.stats.items()):
            delivered0, dead0 = self._lane_base.get((proc, stream), (0, 0))
            cursor = max(ls.cursor, delivered0 + dead0)
            out.append(
                LaneSample(
                    processor=proc,
                    stream=stream,
                    state=ls.state,
                    delivered=delivered0 + ls.delivered,
                    dead=dead0 + ls.dead,
                    lag=max(0, heads.get(stream, 0) - cursor),
                    cursor=cursor,
                    last_error=ls.last_error,
                )
            )
        return out

    async def _stored_heads(self, now: float) -> dict[str, int]:
        if now - self._heads_at > HEADS_MAX_AGE:
            totals = await _totals(self.store)
            self._heads = {n: t.get("events", 0) for n, t in totals.items()}
            self._heads_at = now
        return self._heads

    # -- readiness ----------------------------------------------------------------------

    async def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "store": problem|None, "streams": {name: why}, "processors": ...}``."""
        sample = await self.sample()
        store = await self._store_problem()
        streams = {s.name: s.unready for s in sample.streams if s.unready}
        lanes = {
            f"{ln.processor}/{ln.stream}": f"failed: {ln.last_error}"
            for ln in sample.lanes
            if ln.state == "failed"
        }
        ready = store is None and not streams and not lanes
        return {"ready": ready, "store": store, "streams": streams, "processors": lanes}

    async def _store_problem(self) -> str | None:
        """None when the store answers and its last writes went through."""
        runner = self.runner
        if runner is not None:
            for name, writer in list(runner.writers.items()):
                if writer.store_error is not None:
                    return f"stream {name}: {writer.store_error}"
            if runner.status_error is not None:
                return f"saving status fails: {runner.status_error}"
        try:
            first = self.config.streams[0].name
            await asyncio.wait_for(self.store.checkpoint(first), STORE_PROBE_TIMEOUT)
        except TimeoutError:
            return f"the store did not answer within {STORE_PROBE_TIMEOUT:g}s"
        except Exception as e:
            return f"the store does not answer: {e}"
        return None

    # -- cursors for the page -----------------------------------------------------------

    async def cursors(self, sample: Sample, budget: int = 500) -> dict[str, str | None]:
        """Each stream's checkpoint, re-read (up to ``budget`` per call, the longest-waiting
        first) for streams that stored events since it was last read."""
        stale = [s for s in sample.streams if self._cursors.get(s.name, (-1, None))[0] != s.events]
        if stale:
            start = self._cursor_turn % len(stale)
            for s in (stale[start:] + stale[:start])[:budget]:
                with contextlib.suppress(Exception):  # shown as before; retried next tick
                    self._cursors[s.name] = (s.events, await self.store.checkpoint(s.name))
            self._cursor_turn += budget
        return {name: cursor for name, (_, cursor) in self._cursors.items()}


def _duration(seconds: float) -> str:
    """``42s``, ``17m``, ``5.2h``: short enough for a status line."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


async def _totals(store: Outbox) -> dict[str, dict[str, int]]:
    """The store's life-long counters per stream."""
    kinds = ("events", "duplicates", "quarantined", "reconnects")
    totals = await store.totals()
    return {name: {k: getattr(t, k) for k in kinds} for name, t in totals.items()}
