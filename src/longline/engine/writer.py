"""Group commit: batch a stream's events and append them with their checkpoint.

Messages are keyed as they are pushed (on the event loop, cheap) into a column-wise
``EventBatch``, so no object is made per event; one flusher task commits a batch when it holds
``batch_max`` events, or when its first event has waited a *linger*: as long as the last commit
took, but at least a tenth of ``batch_window`` and at most all of it. A fast store (SQLite: a
commit takes about a millisecond) thus commits within a few ms of receipt (p99 latency), a slow
one still batches up to ``batch_window``, and under load batches fill to ``batch_max`` by
themselves. The floor keeps commits from shrinking to a few events each: every SQLite commit
rewrites its partly filled pages, so tiny commits cost CPU, WAL volume and checkpoint work, and
under load they made p99 worse, not better (measured in docs/benchmarks.md).
While one batch commits the next one fills, so the store and the socket work in parallel. A
buffer past ``max_pending`` makes connections stop reading (backpressure through TCP) instead
of growing memory. Waits use futures made on demand and the flusher task starts with the first
message, so an idle stream costs no task and no waiter queues (memory per idle stream).

Every push gets a *ticket* (a running count); ``committed_ticket`` says how far commits have
got, which is how rotation knows that a successor's first events are durable, and
``after_commit`` calls back once a ticket is durable: provider sessions acknowledge an event
only then (a crash before the commit makes the provider redeliver it instead of losing it).

A store that fails is retried with backoff (one log line per attempt, the error kept in the
stream's ``reason``): an outage (a server restarting, throttling) must not lose what is
buffered. The writer gives up only when retrying cannot help: a call has failed for longer than
``patience`` (``store_patience``), or the store called its error permanent (access denied) 3
times in a row. It then stops committing, keeps what it holds uncommitted (so no checkpoint
covers it: a resumable feed sends it again on the next run) and calls ``on_give_up``, which
ends the run. ``close(timeout)`` gives up the same way: what it could not commit in time stays
out of the store, and so out of the checkpoint, and is returned as a count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from longline.core.keys import EventBatch, Keyer
from longline.core.model import AppendResult, Quarantined
from longline.core.secrets import redact_stored
from longline.engine.stats import COMMIT_SECONDS, StreamStats
from longline.stores.base import EventLog
from longline.transports.base import Connection, Item

log = logging.getLogger(__name__)
_T = TypeVar("_T")
LINGER_FLOOR = 0.1  # a batch waits at least this fraction of batch_window for more events
RETRY_FIRST, RETRY_MAX = 0.1, 10.0  # backoff between attempts of a failing store call
RETRY_MAX_CLOSING = 0.5  # while closing the deadline bounds the attempts; retry sooner
PERMANENT_TRIES = 3  # a store error called permanent ends the writer after this many in a row


class StoreSignal:
    """Wakes the writers that back off from a failing store as soon as any call to it
    succeeds (another writer's, or the runner's status save), instead of leaving each asleep
    for up to ``RETRY_MAX`` after the store came back: a live feed's buffer and its rotations
    wait on those commits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiting = 0

    def ok(self) -> None:
        """A call to the store succeeded."""
        if self._waiting:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Sleep ``timeout`` seconds, or less if the store answers meanwhile."""
        event = self._event
        self._waiting += 1
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1


class StoreGaveUp(Exception):
    """The writer stopped retrying the store (its ``patience`` ran out, or a permanent error)."""


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


Waiters = list[tuple[int, asyncio.Future[None]]]


def _release(waiters: Waiters, done: int) -> Waiters:
    """Resolve the waiters whose target count ``done`` reached; return the others."""
    for wanted, fut in waiters:
        if wanted <= done:
            _resolve(fut)
    return [(t, f) for t, f in waiters if t > done and not f.done()]


class StreamWriter:
    """Keys, batches and commits the events of one stream.

    Slotted: with more than 30 attributes an instance ``__dict__`` stops sharing its keys
    with the class and costs ~1.5 KB per stream (docs/benchmarks.md, idle streams).
    """

    __slots__ = (
        "_batch",
        "_callbacks",
        "_closing",
        "_commit_s",
        "_inflight",
        "_lingering",
        "_q_callbacks",
        "_q_pushed",
        "_q_waiters",
        "_q_written",
        "_quarantine",
        "_reconnects",
        "_released",
        "_room",
        "_started",
        "_store_error",
        "_task",
        "_ticket",
        "_urgent",
        "_waiters",
        "_wake",
        "batch_max",
        "batch_window",
        "committed_ticket",
        "dropped",
        "epoch",
        "failure",
        "fenced",
        "gave_up",
        "keyer",
        "lease_check",
        "max_message_size",
        "max_pending",
        "on_give_up",
        "patience",
        "secrets",
        "stats",
        "store",
        "store_signal",
        "stream",
    )

    def __init__(
        self,
        stream: str,
        store: EventLog,
        keyer: Keyer,
        stats: StreamStats,
        *,
        batch_max: int,
        batch_window: float,
        max_message_size: int,
        max_pending: int | None = None,
        epoch: int | None = None,
        secrets: frozenset[str] = frozenset(),
        patience: float | None = None,
        on_give_up: Callable[[str, str], None] | None = None,
        store_signal: StoreSignal | None = None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.keyer = keyer
        self.stats = stats
        self.batch_max = batch_max
        self.batch_window = batch_window
        self.max_message_size = max_message_size
        self.max_pending = max_pending or batch_max * 8
        self.secrets = secrets  # redacted from quarantine reasons before they are stored
        self.patience = patience  # None or 0: retry a failing store for as long as we run
        self.on_give_up = on_give_up  # called (stream, reason) once the writer gave up
        self.gave_up: str | None = None  # why, once it did
        self.store_signal = store_signal or StoreSignal()  # shared by a runner's writers
        self._batch = EventBatch()
        self._quarantine: list[Quarantined] = []
        self._ticket = 0
        self.committed_ticket = 0
        self._wake: asyncio.Future[None] | None = None  # the flusher sleeps on it
        self._lingering = False  # the flusher waits for a fuller batch (wake it when full)
        self._urgent = False  # flush() asked: commit without lingering until empty
        self._room: asyncio.Future[None] | None = None  # producers wait on it when backlogged
        self._waiters: Waiters = []  # wait_committed
        self._callbacks: list[tuple[int, Callable[[], None]]] = []  # after_commit, by ticket
        # Quarantined items have no tickets: counted apart so flush() can wait for them too.
        self._q_pushed = 0
        self._q_written = 0
        self._q_waiters: Waiters = []
        self._q_callbacks: list[tuple[int, Callable[[], None]]] | None = None  # made on use
        self._commit_s = 0.0  # how long the last commit took
        self._inflight = 0  # items of the store call under way (out of the buffer, not stored)
        self._released = False  # shutdown began: producers no longer wait for room
        self._store_error: str | None = None  # the reason set while the store fails
        self._started = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        # The lease epoch this writer commits under (time-limited invocations and shared
        # stores); ``fenced`` turns True once the store says a newer owner took over.
        self.epoch = epoch
        self.fenced = False
        # Asked before each append under ``epoch`` (worker mode sets it): False means a newer
        # owner is already capturing, so the batch is dropped instead of committed. See
        # ``LeaseKeeper.may_commit``.
        self.lease_check: Callable[[], Awaitable[bool]] | None = None
        self.dropped = 0  # events not committed because ``lease_check`` said no
        self._reconnects = 0  # counted since the last append, which adds them to the totals

    # -- producer side (called by connections, on the loop) -------------------------------

    @property
    def backlogged(self) -> bool:
        """True while the buffer is over ``max_pending``."""
        return len(self._batch) >= self.max_pending

    def push(self, items: Sequence[Item], conn: Connection) -> None:
        """Key and buffer ``items``; wake the flusher when it should commit."""
        batch = self._batch
        bad = len(self._quarantine)
        added = self.keyer.key_into(
            items, time.time(), batch, self._quarantine, self.max_message_size
        )
        self._q_pushed += len(self._quarantine) - bad
        conn.pushed += len(items)
        if added:
            self._ticket += added
            if conn.first_ticket is None:
                conn.first_ticket = self._ticket - added + 1
        elif not self._quarantine:
            return
        if not self._lingering or len(batch) >= self.batch_max:
            self._wake_flusher()

    def note_reconnect(self) -> None:
        """Count a reconnect; the next append (an empty one if no event comes within the
        linger) adds it to the stream's totals in its transaction."""
        self.stats.reconnects += 1
        self._reconnects += 1
        self._wake_flusher()

    def _wake_flusher(self) -> None:
        if self._task is None:
            if self._started and not self._closing:
                self._task = asyncio.create_task(self._run(), name=f"writer:{self.stream}")
        elif self._wake is not None:
            _resolve(self._wake)

    async def drained(self) -> None:
        """Wait until the buffer is below ``max_pending`` (or shutdown began)."""
        while (
            len(self._batch) >= self.max_pending
            and (self.failure is None or self.gave_up is not None)
            and not self._released
        ):
            if self._room is None or self._room.done():
                self._room = asyncio.get_running_loop().create_future()
            await self._room
        if self.failure is not None and self.gave_up is None:
            raise RuntimeError("store writes are failing") from self.failure

    # -- flusher ------------------------------------------------------------------------

    def start(self) -> None:
        """Let the flusher run; its task starts with the first pushed message."""
        self._started = True
        if self._batch or self._quarantine or self._reconnects:
            self._wake_flusher()

    async def _run(self) -> None:
        try:
            await self._loop()
        except StoreGaveUp as e:  # not a crash: what is held stays uncommitted, counted
            self.failure = e
            self.gave_up = self.stats.reason = str(e)
            self._fail_waiters(keep_room=True)
            log.error("stream %s: %s", self.stream, e, extra={"stream": self.stream})
            if self.on_give_up is not None:
                self.on_give_up(self.stream, str(e))
        except Exception as e:  # a bug, not the store: store calls are retried
            self.failure = e
            self._fail_waiters()
            raise

    def _fail_waiters(self, keep_room: bool = False) -> None:
        # keep_room: producers keep waiting for room until shutdown releases them, rather than
        # failing their connections while the run is being stopped.
        room = [] if keep_room else [self._room]
        for fut in [f for _, f in self._waiters + self._q_waiters] + room:
            if fut is not None and not fut.done():
                fut.set_exception(RuntimeError("store writes are failing"))
        self._waiters, self._q_waiters = [], []

    async def _loop(self) -> None:
        while True:
            if not self._batch and not self._quarantine and not self._reconnects:
                self._urgent = False
                if self._closing:
                    return
                await self._sleep(None)
                continue
            if len(self._batch) < self.batch_max and not (self._urgent or self._closing):
                window = self.batch_window
                linger = min(window, max(window * LINGER_FLOOR, self._commit_s))
                if linger > 0:
                    self._lingering = True
                    try:
                        await self._sleep(linger)
                    finally:
                        self._lingering = False
            await self._commit_once()

    async def _sleep(self, timeout: float | None) -> None:
        """Wait until woken (``_wake_flusher``) or for ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _resolve, wake)
        try:
            await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    async def _commit_once(self) -> None:
        if len(self._batch) > self.batch_max:
            batch = self._batch.take(self.batch_max)
        else:
            batch, self._batch = self._batch, EventBatch()
        quarantined, self._quarantine = self._quarantine, []
        ticket = self._ticket - len(self._batch)  # tickets count events only, FIFO
        if self._room is not None and len(self._batch) < self.max_pending:
            _resolve(self._room)
        self._inflight = len(batch) + len(quarantined)
        if quarantined:
            quarantined = [
                dataclasses.replace(q, reason=redact_stored(q.reason, self.secrets))
                for q in quarantined
            ]
            await self._retrying(self.store.quarantine, self.stream, quarantined)
            self._inflight -= len(quarantined)
            self.stats.quarantined += len(quarantined)
            self._q_written += len(quarantined)
            self._q_waiters = _release(self._q_waiters, self._q_written)
            if self._q_callbacks:
                self._run_q_callbacks()
            for q in quarantined:
                log.warning(
                    "stream %s: quarantined: %s", self.stream, q.reason,
                    extra={"stream": self.stream},
                )  # fmt: skip
        reconnects = self._reconnects
        if batch or reconnects:
            loop = asyncio.get_running_loop()
            started = loop.time()
            dropped = self.dropped
            result = await self._retrying(self._append, batch, reconnects)
            if self.dropped > dropped:  # not stored: never acknowledge them to the provider
                self._callbacks = [(t, fn) for t, fn in self._callbacks if t > ticket]
            self._reconnects -= reconnects
            self._commit_s = loop.time() - started
            self._inflight = 0
            COMMIT_SECONDS.observe(self._commit_s)
            if result.fenced and not self.fenced:
                self.fenced = True
                log.info(
                    "stream %s: superseded by a newer lease; checkpoint left to it", self.stream,
                    extra={"stream": self.stream},
                )  # fmt: skip
            stats = self.stats
            stats.events += result.new
            stats.duplicates += result.duplicates
            stats.last_seq = result.last_seq
            if result.new:
                stats.last_event_at = batch.received[-1]
        self.committed_ticket = max(self.committed_ticket, ticket)
        if self._waiters:
            self._waiters = _release(self._waiters, self.committed_ticket)
        if self._callbacks:
            self._run_callbacks()

    @property
    def last_ticket(self) -> int:
        """The ticket of the last event pushed."""
        return self._ticket

    def after_commit(self, ticket: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on the loop) once ``ticket`` is committed; at once if it already is.
        Never called for events a closing writer gave up on."""
        if self.committed_ticket >= ticket:
            fn()
        else:
            self._callbacks.append((ticket, fn))

    @property
    def quarantine_ticket(self) -> int:
        """The ticket of the last quarantined item pushed (they count apart from events)."""
        return self._q_pushed

    def after_quarantined(self, ticket: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on the loop) once the quarantined items up to ``ticket`` are written;
        at once if they are. Never called for items a closing writer gave up on."""
        if self._q_written >= ticket:
            fn()
        elif self._q_callbacks is None:
            self._q_callbacks = [(ticket, fn)]
        else:
            self._q_callbacks.append((ticket, fn))

    def _run_q_callbacks(self) -> None:
        done, pending = self._q_written, self._q_callbacks or []
        due = [fn for t, fn in pending if t <= done]
        self._q_callbacks = [(t, fn) for t, fn in pending if t > done] or None
        for fn in due:
            try:
                fn()
            except Exception:  # a connection's trouble must not stop the flusher
                log.exception("stream %s: after-quarantine callback failed", self.stream)

    def _run_callbacks(self) -> None:
        done = self.committed_ticket
        due = [fn for t, fn in self._callbacks if t <= done]
        self._callbacks = [(t, fn) for t, fn in self._callbacks if t > done]
        for fn in due:
            try:
                fn()
            except Exception:  # a connection's trouble must not stop the flusher
                log.exception("stream %s: after-commit callback failed", self.stream)

    async def _append(self, batch: EventBatch, reconnects: int) -> AppendResult:
        if self.lease_check is not None and not await self.lease_check():
            if batch and not self.dropped:
                log.info(
                    "stream %s: a newer owner captures it; not committing what is left",
                    self.stream, extra={"stream": self.stream},
                )  # fmt: skip
            self.dropped += len(batch)
            self.fenced = True
            return AppendResult(new=0, duplicates=0, last_seq=self.stats.last_seq, fenced=True)
        if reconnects:  # passed only when there are some: wrappers of older stores still work
            return await self.store.append(
                self.stream, batch, None, self.epoch, reconnects=reconnects
            )
        return await self.store.append(self.stream, batch, None, self.epoch)

    async def _retrying(self, fn: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """Retry a store call until it succeeds, ``close`` gives up on it, or retrying cannot
        help (:class:`StoreGaveUp`: see the module docstring): a store outage must not lose
        buffered events. Logs once per attempt, and keeps the error in the stream's ``reason``
        (so ``longline status`` shows it) until a call succeeds."""
        delay = RETRY_FIRST
        loop = asyncio.get_running_loop()
        since: float | None = None  # when the first attempt failed
        permanent = 0
        while True:
            try:
                result = await fn(*args)
            except Exception as e:  # a StoreError or a lost database connection
                permanent = permanent + 1 if getattr(e, "permanent", False) else 0
                since = loop.time() if since is None else since
                failing = loop.time() - since
                if not self._closing and permanent >= PERMANENT_TRIES:
                    raise StoreGaveUp(f"store refused {permanent} times, giving up: {e}") from e
                if not self._closing and self.patience and failing >= self.patience:
                    raise StoreGaveUp(
                        f"store writes failed for {round(failing, 1):g}s (store_patience"
                        f" {self.patience:g}s), giving up: {e}"
                    ) from e
                if self._closing:
                    delay = min(delay, RETRY_MAX_CLOSING)
                elif self.patience:  # the last wait ends as the patience does, not up to 10 s on
                    delay = min(delay, max(self.patience - failing, 0.0) + 0.01)
                log.error(
                    "stream %s: store write failed (%s); retrying in %.1fs", self.stream, e, delay,
                    extra={"stream": self.stream},
                )  # fmt: skip
                self._store_error = self.stats.reason = f"store write failed: {e}"
                await self.store_signal.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.store_signal.ok()
            if self._store_error is not None:
                log.info(
                    "stream %s: store writes succeed again", self.stream,
                    extra={"stream": self.stream},
                )  # fmt: skip
                if self.stats.reason == self._store_error:
                    self.stats.reason = None
                self._store_error = None
            return result

    async def wait_committed(self, ticket: int) -> None:
        """Return once every item pushed up to ``ticket`` has been committed."""
        if self.committed_ticket >= ticket:
            return
        if self.failure is not None:  # no flusher will ever commit it
            raise RuntimeError("store writes are failing") from self.failure
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((ticket, fut))
        await fut

    async def flush(self) -> None:
        """Commit everything pushed so far (raises once a close gave up on some of it)."""
        if self._task is None:
            if self._closing and self.uncommitted:
                raise RuntimeError("store writes are failing")
            return
        self._urgent = True
        self._wake_flusher()
        await self.wait_committed(self._ticket)
        if self._q_written < self._q_pushed:
            if self.failure is not None:
                raise RuntimeError("store writes are failing") from self.failure
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._q_waiters.append((self._q_pushed, fut))
            self._wake_flusher()
            await fut

    def release(self) -> None:
        """Stop holding producers back: shutdown began, so connections must end now rather
        than wait for room in a buffer that a slow store drains."""
        self._released = True
        if self._room is not None:
            _resolve(self._room)

    @property
    def uncommitted(self) -> int:
        """Items (events and quarantined ones) pushed but not committed."""
        return len(self._batch) + len(self._quarantine) + self._inflight

    @property
    def store_error(self) -> str | None:
        """The last store failure, while store calls are failing."""
        return self._store_error

    async def close(self, timeout: float | None = None) -> int:
        """Commit what is buffered and stop the flusher; return how many items are left.

        After ``timeout`` seconds the flusher is cancelled: what it had not committed is not in
        the store, so no checkpoint covers it (a resumable feed sends it again on the next
        run). A store call under way when cancelled may still complete on its own; it then
        commits its events together with their checkpoint, so the count is an upper bound.
        """
        self._closing = True
        self.release()
        self._wake_flusher()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait([task], timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait([task])
                self._fail_waiters()
            self._task = None
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error
        return self.uncommitted
