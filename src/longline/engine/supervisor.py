"""One supervisor per stream: connect, resume, watch, rotate, reconnect.

The supervisor owns ``redundancy`` connection *slots*. Each slot keeps one connection alive:
it resumes from the stored checkpoint, backs off by cause when a connection ends (``core.errors``),
and rotates make-before-break before ``max_lifetime`` (``core.handoff``). All connections of a
stream push into the same writer; the store's key drops what several of them delivered.
A stall watchdog aborts any connection that received nothing for ``stall_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import aiohttp

from longline.config import StreamConfig
from longline.core.backoff import Backoff
from longline.core.errors import Cause, Outcome, RetryPolicy
from longline.core.handoff import Action, Rotation
from longline.core.resume import build_request
from longline.engine.stats import StreamStats
from longline.engine.writer import StreamWriter
from longline.stores.base import Store
from longline.transports.base import Connection
from longline.transports.stream import LinesConnection, SSEConnection
from longline.transports.ws import WSConnection

log = logging.getLogger(__name__)

ROTATED = Outcome(Cause.CLOSED_BY_PEER, None, None, "rotated")
SHUTDOWN = Outcome(Cause.CLOSED_BY_PEER, None, None, "shutdown")


class Supervisor:
    """Keeps one configured stream captured until ``stop()``."""

    def __init__(
        self,
        cfg: StreamConfig,
        store: Store,
        session: aiohttp.ClientSession,
        writer: StreamWriter,
        stats: StreamStats,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.session = session
        self.writer = writer
        self.stats = stats
        self.open: set[Connection] = set()
        self._stopping = asyncio.Event()
        self._failed_slots = 0

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run every slot and the watchdog until ``stop()`` or every slot failed."""
        slots = [
            asyncio.create_task(self._slot(n), name=f"{self.cfg.name}:slot{n}")
            for n in range(self.cfg.redundancy)
        ]
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await asyncio.gather(*slots)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    def stop(self) -> None:
        """Close every connection; ``run`` returns once they are closed."""
        self._stopping.set()
        for conn in list(self.open):
            conn.abort(SHUTDOWN)

    # -- one slot -----------------------------------------------------------------------

    async def _slot(self, n: int) -> None:
        cfg = self.cfg
        policy = RetryPolicy(Backoff(cfg.backoff.initial, cfg.backoff.max))
        first = True
        while not self._stopping.is_set():
            if not first:
                self.stats.reconnects += 1
            first = False
            self._set_state("connecting")
            conn = await self._new_connection()
            outcome, was_live = await self._serve(conn)
            if self._stopping.is_set():
                return
            decision = policy.decide(outcome, was_live)
            if decision.stop:
                self._failed_slots += 1
                log.error("stream %s: giving up: %s", cfg.name, decision.reason)
                if self._failed_slots >= cfg.redundancy:
                    self.stats.state, self.stats.reason = "failed", decision.reason
                return
            log.warning(
                "stream %s: connection ended (%s); reconnecting in %.2fs",
                cfg.name,
                outcome.detail,
                decision.delay,
            )
            self.stats.reason = outcome.detail
            self._set_state("backing-off")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), decision.delay)

    async def _new_connection(self) -> Connection:
        """A connection that resumes from the committed checkpoint."""
        cfg = self.cfg
        await self.writer.flush()
        cursor = await self.store.checkpoint(cfg.name)
        resume = cfg.resume
        request = build_request(
            cfg.url,
            cfg.headers,
            cfg.subscribe,
            resume_header=resume.header if resume else None,
            resume_query=resume.query if resume else None,
            cursor=cursor,
        )
        if cfg.cursor == "sse-id" and cursor:
            request = dataclasses.replace(request, last_event_id=cursor)
        timeout = max(cfg.stall_timeout, 5.0)
        if cfg.transport == "ws":
            return WSConnection(
                self.session,
                request,
                max_message_size=cfg.max_message_size,
                connect_timeout=timeout,
                ping_interval=cfg.ping_interval,
            )
        kind = SSEConnection if cfg.transport == "sse" else LinesConnection
        return kind(
            self.session, request, max_message_size=cfg.max_message_size, connect_timeout=timeout
        )

    async def _serve(self, conn: Connection) -> tuple[Outcome, bool]:
        """Run ``conn`` (and its successors, on rotation) until the current one ends."""
        loop = asyncio.get_running_loop()
        rotation = Rotation(self.cfg.max_lifetime)
        task = self._start(conn)
        successor: tuple[Connection, asyncio.Task[Outcome]] | None = None
        await _first_of(conn.connected.wait(), task)
        rotation.on_opened(loop.time())
        if conn.connected.is_set():
            self._set_state("live")
        while True:
            deadline = rotation.next_deadline()
            waits: list[asyncio.Task[Outcome]] = [task]
            if successor is not None:
                waits.append(successor[1])
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            if successor is not None and not rotation.successor_committed:
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            now = loop.time()
            if task.done():
                if successor is not None:  # predecessor died during the overlap: hand over
                    conn, task = successor
                    successor = None
                    rotation.on_opened(now)
                    continue
                return task.result(), conn.pushed > 0
            if successor is not None:
                new, new_task = successor
                if new_task.done():
                    rotation.on_successor_failed(now, retry_in=self.cfg.backoff.initial)
                    successor = None
                    continue
                if new.connected.is_set() and rotation.successor_connected is None:
                    rotation.on_successor_connected(now)
                if new.first_ticket is not None and (
                    self.writer.committed_ticket >= new.first_ticket
                ):
                    rotation.on_successor_committed()
            action = rotation.decide(now)
            if action is Action.OPEN_SUCCESSOR:
                new = await self._new_connection()
                successor = (new, self._start(new))
            elif action is Action.CLOSE_PREDECESSOR and successor is not None:
                conn.abort(ROTATED)
                await task
                conn, task = successor
                successor = None
                self.stats.rotations += 1
                rotation.on_opened(now)
            elif action is Action.ABANDON_SUCCESSOR and successor is not None:
                successor[0].abort(ROTATED)
                await successor[1]
                successor = None
                rotation.on_successor_failed(now, retry_in=self.cfg.backoff.initial)

    def _start(self, conn: Connection) -> asyncio.Task[Outcome]:
        self.open.add(conn)
        self.stats.connections = len(self.open)
        if self._stopping.is_set():
            conn.abort(SHUTDOWN)

        async def runner() -> Outcome:
            try:
                return await conn.run(self.writer)
            finally:
                self.open.discard(conn)
                self.stats.connections = len(self.open)

        return asyncio.create_task(runner())

    # -- liveness -----------------------------------------------------------------------

    async def _watchdog(self) -> None:
        """Abort connections that received nothing for ``stall_timeout``."""
        limit = self.cfg.stall_timeout
        loop = asyncio.get_running_loop()
        period = min(max(limit / 4, 0.05), 1.0)
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for conn in list(self.open):
                if now - conn.last_rx > limit:
                    log.warning("stream %s: nothing received for %.1fs", self.cfg.name, limit)
                    conn.abort(Outcome(Cause.STALL, None, None, f"stalled for {limit:g}s"))

    def _set_state(self, state: str) -> None:
        if self.stats.state != "failed":
            self.stats.state = state


async def _first_of(aw: object, task: asyncio.Task[Outcome]) -> None:
    """Wait until ``aw`` completes or ``task`` ends, whichever is first."""
    other = asyncio.ensure_future(aw)  # type: ignore[call-overload]
    try:
        await asyncio.wait([other, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        other.cancel()
