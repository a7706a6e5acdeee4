"""One supervisor per stream: connect, resume, watch, rotate, reconnect.

The supervisor owns ``redundancy`` connection *slots*. Each slot keeps one connection alive:
it resumes from the stored checkpoint, backs off by cause when a connection ends (``core.errors``),
and rotates make-before-break before ``max_lifetime`` (``core.handoff``). An SSE slot behaves like
a browser's ``EventSource``: the last event ID and the ``retry`` time of one connection carry
over to the next (the stored checkpoint only seeds the first), and ``retry`` is the least delay
before reconnecting. All connections of a
stream push into the same writer; the store's key drops what several of them delivered.
A stall watchdog aborts any connection that received nothing for ``stall_timeout``.
A stream with a provider ``session`` (``longline.sessions``) rotates the same way when the
provider asks for a reconnect: the successor goes to the URL the provider named (or a fresh
one) and the predecessor closes once the successor's session is ready, after sending the
acknowledgements it owes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from longline.config import StreamConfig
from longline.core.backoff import Backoff
from longline.core.errors import Cause, Outcome, RetryPolicy
from longline.core.handoff import Action, Rotation
from longline.core.resume import build_request
from longline.engine.connections import connection_for
from longline.engine.gate import ConnectGate
from longline.engine.stats import CAUSE_LABELS, StreamStats
from longline.engine.writer import StreamWriter
from longline.sessions.base import SessionContext
from longline.sessions.connection import SessionConnection
from longline.stores.base import EventLog
from longline.transports.base import Connection, Flag
from longline.transports.registry import REGISTRY as TRANSPORTS
from longline.transports.stream import SSEFraming, SSEState

log = logging.getLogger(__name__)

ROTATED = Outcome(Cause.CLOSED_BY_PEER, None, None, "rotated")
SHUTDOWN = Outcome(Cause.CLOSED_BY_PEER, None, None, "shutdown")
CHECKPOINT_RETRY = (0.1, 5.0)  # first and longest wait between reads of the checkpoint


class Supervisor:
    """Keeps one configured stream captured until ``stop()``."""

    def __init__(
        self,
        cfg: StreamConfig,
        store: EventLog,
        session: aiohttp.ClientSession,
        writer: StreamWriter,
        stats: StreamStats,
        gate: ConnectGate | None = None,
    ) -> None:
        self.cfg = cfg
        self.gate = gate  # connect_rate, shared by every stream of the process
        self.store = store
        self.session = session
        self.writer = writer
        self.stats = stats
        self.open: list[Connection] = []  # one or two: a set costs 216 B even empty
        self._stopping = Flag()  # an asyncio.Event allocates a deque (~850 B) up front
        self._failed_slots = 0
        self._resumed_from: str | None = None  # the cursor the last connection resumed after
        self._slot_states: dict[int, dict[str, Any]] | None = None  # session streams only

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run every slot, watched for stalls, until ``stop()`` or every slot failed.

        With ``redundancy: 1`` the slot runs in this task: a task per slot costs ~1.4 KB.
        """
        watchdog = _Watchdog.join(self)
        try:
            if self.cfg.redundancy == 1:
                await self._slot(0)
            else:
                slots = [
                    asyncio.create_task(self._slot(n), name=f"{self.cfg.name}:slot{n}")
                    for n in range(self.cfg.redundancy)
                ]
                await asyncio.gather(*slots)
        finally:
            await watchdog.leave(self)
            if self._stopping.is_set() and self.stats.state != "failed":
                self.stats.reason = None  # a clean stop leaves no stale error behind

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
        sse: SSEState | None = None  # this slot's EventSource state, once a connection ran
        cause: Cause | None = None  # what ended the last connection
        while not self._stopping.is_set():
            if not first:
                self.writer.note_reconnect()
                self.stats.count_cause(cause)
            first = False
            self._set_state("connecting")
            if self.gate is not None and (wait := self.gate.reserve()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
                if self._stopping.is_set():
                    return
            try:
                conn = await self._new_connection(sse, n)
            except Exception:
                if self._stopping.is_set() or self.writer.gave_up is not None:
                    return  # the store failed while stopping, or for good: reported there
                raise
            if cfg.max_lifetime is None and cfg.session is None:  # never rotates
                outcome, was_live = await self._serve_alone(conn, n)  # one frame less
            else:
                live = functools.partial(self._went_live, n, self._resumed_from)
                outcome, was_live, conn = await self._serve(conn, live, n)
            if isinstance(conn, SSEFraming):
                sse = conn.state
            del conn  # an idle backoff holds no closed connection
            if self._stopping.is_set():
                return
            decision = policy.decide(outcome, was_live)
            cause = outcome.cause
            if decision.stop:
                self._failed_slots += 1
                log.error(
                    "stream %s: giving up: %s", cfg.name, decision.reason,
                    extra={"stream": cfg.name, "cause": CAUSE_LABELS[outcome.cause]},
                )  # fmt: skip
                if self._failed_slots >= cfg.redundancy:
                    self.stats.state, self.stats.reason = "failed", decision.reason
                return
            delay = decision.delay
            if sse is not None and sse.retry is not None:
                delay = max(delay, sse.retry / 1000)  # the server's retry: never sooner
            log.warning(
                "stream %s: connection ended (%s); reconnecting in %.2fs",
                cfg.name, outcome.detail, delay,
                extra={"stream": cfg.name, "cause": CAUSE_LABELS[outcome.cause]},
            )  # fmt: skip
            self.stats.reason = outcome.detail
            self._set_state("backing-off")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _checkpoint(self) -> str | None:
        """The committed checkpoint, read again with backoff while the store is unreachable (a
        server restarting): an outage must delay a reconnect, not end the stream. Raises once
        stopping, or once the writer gave up on the store."""
        delay = CHECKPOINT_RETRY[0]
        while True:
            try:
                return await self.store.checkpoint(self.cfg.name)
            except Exception as e:  # a StoreError, or a driver's error that escaped it
                if self._stopping.is_set() or self.writer.gave_up is not None:
                    raise
                log.warning(
                    "stream %s: could not read the checkpoint (%s); retrying in %.1fs",
                    self.cfg.name, e, delay, extra={"stream": self.cfg.name},
                )  # fmt: skip
                self.stats.reason = f"could not read the checkpoint: {e}"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, CHECKPOINT_RETRY[1])

    async def _new_connection(
        self, sse: SSEState | None, slot: int = 0, follow: str | None = None
    ) -> Connection:
        """A connection that resumes where the stream is.

        That is the committed checkpoint, except for an SSE slot that already ran a connection
        (``sse``, read before the flush so that all it covers is committed): there, as in a
        browser, ``Last-Event-ID`` is the last event ID of the previous connection, and none
        is sent when it is empty, although the stored checkpoint keeps the last non-empty one.
        """
        cfg = self.cfg
        sse_kind = TRANSPORTS.get(cfg.transport).sse
        if cfg.resume is None and cfg.session is None and (not sse_kind or sse is not None):
            # Nothing goes back to the provider: waiting for the store (the flush) would only
            # delay the connection, and a rotation's successor past the forced close. (A
            # session may resume from the checkpoint itself: Discord's session id and sequence.)
            cursor = None
        else:
            await self.writer.flush()
            cursor = await self._checkpoint()
        last_event_id = ""
        if sse_kind:  # an SSE connection (``SSEFraming``) keeps ``state``
            if cfg.cursor == "sse-id" and sse is not None:
                cursor = sse.last_event_id or None
            if cfg.cursor == "sse-id":
                last_event_id = cursor or ""
            elif sse is not None:
                last_event_id = sse.last_event_id
        self._resumed_from = cursor
        resume = cfg.resume
        request = build_request(
            cfg.url,
            cfg.headers,
            cfg.subscribe,
            resume_header=resume.header if resume else None,
            resume_query=resume.query if resume else None,
            cursor=cursor,
        )
        retry = None if sse is None else sse.retry
        request = dataclasses.replace(request, last_event_id=last_event_id, retry=retry)
        ctx = None
        if cfg.session is not None:  # ``follow``: the URL a provider's reconnect named
            if self._slot_states is None:
                self._slot_states = {}
            state = self._slot_states.setdefault(slot, {})
            ctx = SessionContext(
                cfg.name,
                slot,
                request.url,
                dict(request.headers),
                cursor,
                self.session,
                state,
                follow,
                cfg.stall_timeout,
                self._note,
            )
        return connection_for(cfg, self.session, request, ctx)

    async def _serve(
        self, conn: Connection, live: Callable[[], None], slot: int = 0
    ) -> tuple[Outcome, bool, Connection]:
        """Run ``conn`` (and its successors, on rotation or a provider's reconnect request)
        until the current one ends; return how it ended, whether it delivered, and which
        connection that was."""
        loop = asyncio.get_running_loop()
        rotation = Rotation(self.cfg.max_lifetime)
        task = self._start(conn)
        successor: tuple[Connection, asyncio.Task[Outcome]] | None = None
        dups_before = 0  # the stream's duplicates when the successor was opened
        asked: Connection | None = None  # the connection whose reconnect request was taken
        follow: str | None = None
        await _first_of(conn.connected.wait(), task)
        rotation.on_opened(loop.time())
        if conn.connected.is_set():
            live()
        while True:
            deadline = rotation.next_deadline()
            waits: list[asyncio.Future[Any]] = [task]
            if successor is not None:
                waits.append(successor[1])
            if isinstance(conn, SessionConnection) and asked is not conn:
                waits.append(conn.reconnect)
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            if successor is not None and not (rotation.successor_committed and rotation.overlapped):
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            await _wait_any(waits, timeout)
            now = loop.time()
            if task.done():
                if successor is not None:  # predecessor died during the overlap: hand over
                    conn, task = successor
                    successor = None
                    self.stats.rotations += 1
                    rotation.on_handed_over(now)
                    continue
                # live: it delivered, or its session was established (a quiet Slack app)
                ready = isinstance(conn, SessionConnection) and conn.ready.is_set()
                return task.result(), conn.pushed > 0 or ready, conn
            if isinstance(conn, SessionConnection) and asked is not conn and conn.reconnect.done():
                asked, follow = conn, conn.reconnect.result().url
                rotation.request(now)
            if successor is not None:
                new, new_task = successor
                if new_task.done():
                    rotation.on_successor_failed(now, retry_in=self.cfg.backoff.initial)
                    successor = None
                    continue
                if new.connected.is_set() and rotation.successor_connected is None:
                    rotation.on_successor_connected(now)
                if isinstance(new, SessionConnection) and new.ready.is_set():
                    rotation.on_successor_committed()  # the session hands over by itself
                    rotation.on_overlap()
                elif new.first_ticket is not None and (
                    self.writer.committed_ticket >= new.first_ticket
                ):
                    rotation.on_successor_committed()
                    if self.stats.duplicates > dups_before:
                        rotation.on_overlap()
            action = rotation.decide(now)
            if action is Action.OPEN_SUCCESSOR:
                state = conn.state if isinstance(conn, SSEFraming) else None
                new = await self._new_connection(state, slot, follow if asked is conn else None)
                successor = (new, self._start(new))
                dups_before = self.stats.duplicates  # a later one proves the overlap
            elif action is Action.CLOSE_PREDECESSOR and successor is not None:
                if isinstance(conn, SessionConnection):
                    await conn.retire(self.writer.flush)  # commit, then send the acks it owes
                conn.abort(ROTATED)
                await task
                conn, task = successor
                successor = None
                self.stats.rotations += 1
                rotation.on_handed_over(now)
            elif action is Action.ABANDON_SUCCESSOR and successor is not None:
                successor[0].abort(ROTATED)
                await successor[1]
                successor = None
                rotation.on_successor_failed(now, retry_in=self.cfg.backoff.initial)

    async def _serve_alone(self, conn: Connection, slot: int) -> tuple[Outcome, bool]:
        """``_serve`` without rotation: no successor, so ``conn`` runs in this task instead of
        one of its own (a task and the wait on it are ~1.5 KB per idle stream)."""
        conn.connected = _LiveFlag(self, slot, self._resumed_from)
        self._opened(conn)
        try:
            outcome = await conn.run(self.writer)
        finally:
            self._closed(conn)
        return outcome, conn.pushed > 0

    def _went_live(self, slot: int, cursor: str | None) -> None:
        """Live: say so at INFO, with where it resumed (rotations are not announced)."""
        self._set_state("live")
        cfg = self.cfg
        if cfg.resume is None:
            where = "resume: none"
        elif cursor:
            where = f"resumed after cursor {cursor!r}"
        else:
            where = "no checkpoint yet"
        which = f" [connection {slot + 1}/{cfg.redundancy}]" if cfg.redundancy > 1 else ""
        url = shown_url(cfg.url) if cfg.url else "the URL its session obtained"
        log.info(
            "stream %s%s: connected to %s (%s)", cfg.name, which, url, where,
            extra={"stream": cfg.name, "cursor": cursor if cfg.resume is not None else None},
        )  # fmt: skip

    def _start(self, conn: Connection) -> asyncio.Task[Outcome]:
        self._opened(conn)

        async def runner() -> Outcome:
            try:
                return await conn.run(self.writer)
            finally:
                self._closed(conn)

        return asyncio.create_task(runner())

    def _opened(self, conn: Connection) -> None:
        self.open.append(conn)
        self.stats.connections = len(self.open)
        if self._stopping.is_set():
            conn.abort(SHUTDOWN)

    def _closed(self, conn: Connection) -> None:
        if conn in self.open:
            self.open.remove(conn)
        self.stats.bytes_received += conn.rx_bytes
        self.stats.connections = len(self.open)

    # -- liveness -----------------------------------------------------------------------

    def _check_stalls(self, now: float) -> None:
        """Abort connections that received nothing for ``stall_timeout``.

        Not while the writer is backlogged: then the connections stopped reading on purpose
        (backpressure, a slow or stopped store) and their bytes wait in the socket. Cutting one
        would throw those away, and a live-only feed cannot send them again; the stall clock
        starts anew once they read again."""
        default = self.cfg.stall_timeout
        if self.writer.backlogged:
            for conn in self.open:
                conn.last_rx = now
            return
        for conn in list(self.open):
            limit = default
            if isinstance(conn, SessionConnection) and conn.stall_limit is not None:
                limit = conn.stall_limit  # the provider's keepalive period (Twitch)
            if now - conn.last_rx > limit:
                log.warning(
                    "stream %s: nothing received for %.1fs", self.cfg.name, limit,
                    extra={"stream": self.cfg.name, "cause": CAUSE_LABELS[Cause.STALL]},
                )  # fmt: skip
                conn.abort(Outcome(Cause.STALL, None, None, f"stalled for {limit:g}s"))

    def _note(self, text: str) -> None:
        """A session's report (a revoked subscription): the stream's reason in status."""
        self.stats.reason = text

    def _set_state(self, state: str) -> None:
        if self.stats.state != "failed":
            self.stats.set_state(state)


def shown_url(url: str) -> str:
    """``url`` as logs show it: no user or password, and the query (which often carries a
    token) reduced to ``?…``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


async def _wait_any(tasks: list[asyncio.Future[Any]], timeout: float | None) -> None:
    """``asyncio.wait(tasks, timeout=timeout, return_when=FIRST_COMPLETED)``, lighter.

    A rotating stream spends its whole life in this wait; ``asyncio.wait`` holds ~1.4 KB
    meanwhile (two coroutine frames, a closure and its cells), this one future and a ``partial``.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    wake = functools.partial(_wake, waiter)
    for task in tasks:
        task.add_done_callback(wake)
    timer = None if timeout is None else loop.call_later(timeout, wake, None)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for task in tasks:
            task.remove_done_callback(wake)


def _wake(waiter: asyncio.Future[None], _: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _first_of(aw: object, task: asyncio.Task[Outcome]) -> None:
    """Wait until ``aw`` completes or ``task`` ends, whichever is first."""
    other = asyncio.ensure_future(aw)  # type: ignore[call-overload]
    try:
        await asyncio.wait([other, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        other.cancel()


class _NotifyingFlag(Flag):
    """A ``Flag`` that also calls ``on_set`` when it is set (the connection is open)."""

    __slots__ = ("_on_set",)

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        """Set the flag, wake every waiter, and call ``on_set`` the first time."""
        if not self.is_set():
            super().set()
            self._on_set()


class _LiveFlag(Flag):
    """``_NotifyingFlag(partial(sup._went_live, slot, cursor))`` without the partial and its
    bound method (~170 B per idle stream)."""

    __slots__ = ("_cursor", "_slot", "_sup")

    def __init__(self, sup: Supervisor, slot: int, cursor: str | None) -> None:
        super().__init__()
        self._sup, self._slot, self._cursor = sup, slot, cursor

    def set(self) -> None:
        """Set the flag, wake every waiter, and say the stream is live the first time."""
        if not self.is_set():
            super().set()
            self._sup._went_live(self._slot, self._cursor)


class _Watchdog:
    """One task per event loop and check period that checks every supervisor using them.

    A sleeping task per stream costs ~2 KB (task, coroutine, timer); the period is what each
    supervisor had with a task of its own: a quarter of ``stall_timeout``, within 50 ms - 1 s.
    """

    _running: ClassVar[dict[tuple[asyncio.AbstractEventLoop, float], _Watchdog]] = {}

    def __init__(self, period: float) -> None:
        self.period = period
        self.members: set[Supervisor] = set()
        self.task = asyncio.create_task(self._loop(), name=f"stall-watchdog:{period:g}s")

    @classmethod
    def join(cls, sup: Supervisor) -> _Watchdog:
        """The watchdog of this loop with ``sup``'s period, started if needed, now with ``sup``."""
        period = min(max(sup.cfg.stall_timeout / 4, 0.05), 1.0)
        key = (asyncio.get_running_loop(), period)
        dog = cls._running.get(key)
        if dog is None or dog.task.done():
            dog = cls._running[key] = cls(period)
        dog.members.add(sup)
        return dog

    async def leave(self, sup: Supervisor) -> None:
        """Stop watching ``sup``; the last one to leave ends the task."""
        self.members.discard(sup)
        if self.members:
            return
        key = (self.task.get_loop(), self.period)
        if self._running.get(key) is self:
            del self._running[key]
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.period)
            now = loop.time()
            for sup in list(self.members):
                try:
                    sup._check_stalls(now)
                except Exception:  # one stream's trouble must not unwatch the others
                    log.exception(
                        "stream %s: stall check failed", sup.cfg.name,
                        extra={"stream": sup.cfg.name},
                    )  # fmt: skip
