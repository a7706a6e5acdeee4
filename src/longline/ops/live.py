"""What the operators' listener shows: the live figures of this process, read when asked.

``OpsView`` reads the runner's ``StreamStats``, writers and supervisors and the dispatcher's
lane stats at the moment of a scrape or a page tick, so capture pays nothing for being watched.
Counters continue from the store's totals read when the view starts (a restart does not reset
the series to 0), for every stream the store knows, so a stream a live reload adds later starts
from its history too. A stream stopped in this process (a reload, worker mode) has its run's
final figures folded into its base at the moment it stops (``Runner.on_stream_stopped``),
scraped or not, so a restart never sets a counter back. A processor lane new to the view (a
reload, a restarted dispatcher) takes its base from the store's cursor and dead letters, read
when no acknowledgement can be in flight; until then it is left out of the sample rather than
shown low.
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
    from longline.delivery.dispatcher import DeliveryStats, Dispatcher
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


_NO_RUN = _Base()  # a stopped run's share, already in its base (read-only)


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
        config_of: Callable[[], Config] | None = None,
        dispatcher_of: Callable[[], Dispatcher | None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.runner = runner
        self.dispatcher = dispatcher  # processors beside capture (longline.App), or alone
        self.reload = reload
        # Where the running config and dispatcher are after a reload (``longline.App``'s);
        # by default the runner's (else the dispatcher's) config and the same dispatcher.
        self._config_of = config_of
        self._dispatcher_of = dispatcher_of
        self._streams = {s.name: s for s in config.streams}
        self._base: dict[str, _Base] = {}
        self._current: dict[str, StreamStats] = {}
        self._stopped: dict[str, StreamStats] = {}  # runs folded into their base when they stopped
        self._lane_base: dict[tuple[str, str], tuple[int, int]] = {}  # (delivered, dead)
        self._lane_current: dict[tuple[str, str], DeliveryStats] = {}  # the run the base is for
        self._heads: dict[str, int] = {}  # last stored seq per stream (dispatch mode)
        self._heads_at = 0.0
        self._cursors: dict[str, tuple[int, str | None]] = {}  # events seen -> checkpoint
        self._cursor_turn = 0

    async def start(self) -> None:
        """Read the store's totals and the processors' cursors that the counters continue."""
        totals = await _totals(self.store)
        for name in {*self._streams, *totals}:
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
        if self.runner is not None and self._stream_stopped not in self.runner.on_stream_stopped:
            self.runner.on_stream_stopped.append(self._stream_stopped)
        dispatcher = self.dispatcher
        if dispatcher is not None:
            await self._read_lane_bases(dispatcher, list(dispatcher.stats.items()))

    def close(self) -> None:
        """Stop hearing of the runner's stopped streams (the listener is going away)."""
        if self.runner is not None:
            with contextlib.suppress(ValueError):
                self.runner.on_stream_stopped.remove(self._stream_stopped)

    def _stream_stopped(self, name: str, st: StreamStats) -> None:
        """A run of ``name`` ended in this process: its final figures join the base now, so a
        restart before the next scrape loses none of them."""
        if self._stopped.get(name) is st:
            return
        base = self._base.get(name)
        if base is None:  # a stream the store did not know when the view started
            base = self._base[name] = _Base()
        base.fold(st)
        self._stopped[name] = st
        self._current.pop(name, None)

    async def _read_lane_bases(
        self, dispatcher: Dispatcher, lanes: list[tuple[tuple[str, str], DeliveryStats]]
    ) -> None:
        """Each lane's base from the store: its stored cursor, less its dead letters, less what
        this run of it counted. Taken only when the run's cursor equals the stored one and
        nothing moved during the reads (no acknowledgement in flight); else the next sample
        tries again."""
        for proc in {p for (p, _), _ in lanes}:
            before = {k: (ls.cursor, ls.delivered, ls.dead) for k, ls in lanes if k[0] == proc}
            dead = Counter(
                d.stream for d in await self.store.dead_letters(proc, 0, DEAD_LETTER_COUNT_LIMIT)
            )
            for key, ls in lanes:
                if key[0] != proc:
                    continue
                cursor = await self.store.delivery_cursor(*key)
                if dispatcher.stats.get(key) is not ls:
                    continue  # replaced meanwhile
                if (ls.cursor, ls.delivered, ls.dead) != before[key]:
                    continue  # an acknowledgement landed during the reads
                # The run's cursor is the stored one: every acknowledgement committed is
                # counted in it; or the lane has not read its cursor yet (nothing counted).
                if ls.cursor != cursor and not (ls.state == "starting" and ls.cursor == 0):
                    continue
                stored_dead = dead[key[1]]
                self._lane_base[key] = (
                    max(0, cursor - stored_dead - ls.delivered),
                    max(0, stored_dead - ls.dead),
                )
                self._lane_current[key] = ls

    # -- sampling -----------------------------------------------------------------------

    async def sample(self) -> Sample:
        """Every stream's and lane's figures now (reads the store only in dispatch mode, and
        for a lane new to the view)."""
        self.follow_reload()
        now = time.time()
        streams = self._sample_streams(now)
        heads = {s.name: s.events for s in streams}
        if self.dispatcher is not None and self.runner is None:
            heads = await self._stored_heads(now)
        lanes = await self._sample_lanes(heads)
        tasks = len(asyncio.all_tasks())  # on the loop: counted here, not in the render thread
        return Sample(now, streams, lanes, tasks)

    def follow_reload(self) -> None:
        """Take the running config (and dispatcher) after a live reload: every endpoint calls
        this before it answers, so ``/api/status`` and ``/readyz`` name the streams of the
        reloaded config even when nothing sampled since."""
        if self._dispatcher_of is not None:
            self.dispatcher = self._dispatcher_of()
        if self._config_of is not None:
            config = self._config_of()
        elif self.runner is not None:
            config = self.runner.config
        elif self.dispatcher is not None:
            config = self.dispatcher.config
        else:
            return
        if config is not self.config:
            self.config = config
            self._streams = {s.name: s for s in config.streams}

    def _sample_streams(self, now: float) -> list[StreamSample]:
        runner = self.runner
        if runner is None:
            return []
        out = []
        for name, st in list(runner.stats.items()):
            base = self._base.get(name)
            if base is None:  # a stream the store did not know when the view started
                base = self._base[name] = _Base()
            run: StreamStats | _Base = st
            if self._stopped.get(name) is st:
                run = _NO_RUN  # stopped: its figures are in the base already
            elif (old := self._current.get(name)) is not st:
                if old is not None:  # replaced without a stop this view heard of
                    base.fold(old)
                self._current[name] = st
            sup = runner.supervisors.get(name)
            writer = runner.writers.get(name)
            live_bytes = sum(c.rx_bytes for c in sup.open) if sup is not None and sup.open else 0
            rotations = base.rotations + run.rotations
            run_causes = run.causes if isinstance(run, _Base) else run.reconnect_causes
            causes: dict[str, int] = _NO_CAUSES
            if base.causes or run_causes or rotations:
                causes = Counter(base.causes)
                causes.update(run_causes or {})
                if rotations:
                    causes["rotation"] = rotations
            out.append(
                StreamSample(
                    name=name,
                    state=st.state,
                    reason=st.reason,
                    events=base.events + run.events,
                    duplicates=base.duplicates + run.duplicates,
                    quarantined=base.quarantined + run.quarantined,
                    reconnects=base.reconnects + run.reconnects,
                    causes=causes,
                    connections=st.connections,
                    up=st.state == "live" and st.connections > 0,
                    last_event_at=st.last_event_at,
                    bytes_received=base.bytes_received + run.bytes_received + live_bytes,
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

    async def _sample_lanes(self, heads: dict[str, int]) -> list[LaneSample]:
        dispatcher = self.dispatcher
        if dispatcher is None:
            return []
        lanes = list(dispatcher.stats.items())
        unknown = []
        for key, ls in lanes:
            old = self._lane_current.get(key)
            if old is ls:
                continue
            if old is not None:  # restarted after this view saw it: its final figures are known
                delivered0, dead0 = self._lane_base[key]
                self._lane_base[key] = (delivered0 + old.delivered, dead0 + old.dead)
                self._lane_current[key] = ls
            else:
                unknown.append((key, ls))
        if unknown:
            with contextlib.suppress(Exception):  # the store is down: the next sample retries
                await self._read_lane_bases(dispatcher, unknown)
        out = []
        for (proc, stream), ls in lanes:
            if self._lane_current.get((proc, stream)) is not ls:
                continue  # no base yet: left out rather than shown low
            delivered0, dead0 = self._lane_base[proc, stream]
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
