"""Group commit: batch a stream's events and append them with their checkpoint.

Messages are keyed as they are pushed (on the event loop, cheap) and buffered; one flusher
task commits a batch when it holds ``batch_max`` events or its oldest event has waited
``batch_window`` seconds. While one batch commits the next one fills, so the store and the
socket work in parallel. A buffer past ``max_pending`` makes connections stop reading
(backpressure through TCP) instead of growing memory.

Every push gets a *ticket* (a running count); ``committed_ticket`` says how far commits have
got, which is how rotation knows that a successor's first events are durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from longline.core.keys import Keyer
from longline.core.model import Event, Message, Oversized, Quarantined
from longline.engine.stats import StreamStats
from longline.stores.base import Store
from longline.transports.base import Connection, Item

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class StreamWriter:
    """Keys, batches and commits the events of one stream."""

    def __init__(
        self,
        stream: str,
        store: Store,
        keyer: Keyer,
        stats: StreamStats,
        *,
        batch_max: int,
        batch_window: float,
        max_message_size: int,
        max_pending: int | None = None,
        epoch: int | None = None,
    ) -> None:
        self.stream = stream
        self.store = store
        self.keyer = keyer
        self.stats = stats
        self.batch_max = batch_max
        self.batch_window = batch_window
        self.max_message_size = max_message_size
        self.max_pending = max_pending or batch_max * 8
        self._events: list[Event] = []
        self._quarantine: list[Quarantined] = []
        self._ticket = 0
        self.committed_ticket = 0
        self._has_data = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._committed = asyncio.Condition()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        # The lease epoch this writer commits under (time-limited invocations and shared
        # stores); ``fenced`` turns True once the store says a newer owner took over.
        self.epoch = epoch
        self.fenced = False

    # -- producer side (called by connections, on the loop) -------------------------------

    @property
    def backlogged(self) -> bool:
        """True while the buffer is over ``max_pending``."""
        return len(self._events) >= self.max_pending

    def push(self, items: list[Item], conn: Connection) -> None:
        """Key and buffer ``items``; wake the flusher when a batch is full."""
        now = time.time()
        make = self.keyer.make
        events = self._events
        before = len(events)
        for item in items:
            out = make(item, now) if type(item) is Message else self._oversized(item, now)
            if type(out) is Event:
                events.append(out)
            else:
                self._quarantine.append(out)  # type: ignore[arg-type]
        added = len(events) - before
        conn.pushed += len(items)
        if added:
            self._ticket += added
            if conn.first_ticket is None:
                conn.first_ticket = self._ticket - added + 1
            if len(events) >= self.batch_max:
                self._full.set()
            if len(events) >= self.max_pending:
                self._room.clear()
        if added or self._quarantine:
            self._has_data.set()

    def _oversized(self, item: Item, now: float) -> Quarantined:
        assert isinstance(item, Oversized)
        return self.keyer.oversized(item, now, self.max_message_size)

    async def drained(self) -> None:
        """Wait until the buffer is below ``max_pending``."""
        await self._room.wait()
        if self.failure is not None:
            raise RuntimeError("store writes are failing") from self.failure

    # -- flusher ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the flusher task."""
        self._task = asyncio.create_task(self._run(), name=f"writer:{self.stream}")

    async def _run(self) -> None:
        while True:
            await self._has_data.wait()
            if not self._closing and len(self._events) < self.batch_max:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.batch_window)
            await self._commit_once()
            if self._closing and not self._events and not self._quarantine:
                return

    async def _commit_once(self) -> None:
        events = self._events
        batch, self._events = events[: self.batch_max], events[self.batch_max :]
        quarantined, self._quarantine = self._quarantine, []
        ticket = self._ticket - len(self._events)  # tickets count events only, FIFO
        if len(self._events) < self.batch_max:
            self._full.clear()
            if not self._events:
                self._has_data.clear()
        if len(self._events) < self.max_pending:
            self._room.set()
        if quarantined:
            await self._retrying(self.store.quarantine, self.stream, quarantined)
            self.stats.quarantined += len(quarantined)
            for q in quarantined:
                log.warning("stream %s: quarantined: %s", self.stream, q.reason)
        if batch:
            result = await self._retrying(self.store.append, self.stream, batch, None, self.epoch)
            if result.fenced and not self.fenced:
                self.fenced = True
                log.info(
                    "stream %s: superseded by a newer lease; checkpoint left to it", self.stream
                )
            stats = self.stats
            stats.events += result.new
            stats.duplicates += result.duplicates
            stats.last_seq = result.last_seq
            if result.new:
                stats.last_event_at = batch[-1].received_at
        async with self._committed:
            self.committed_ticket = max(self.committed_ticket, ticket)
            self._committed.notify_all()

    async def _retrying(self, fn: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """Retry a store call until it succeeds: a store outage must not lose buffered events."""
        delay = 0.1
        while True:
            try:
                return await fn(*args)
            except Exception as e:  # a StoreError or a lost database connection
                if self._closing and delay > 5:
                    raise
                log.error(
                    "stream %s: store write failed (%s); retrying in %.1fs", self.stream, e, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def wait_committed(self, ticket: int) -> None:
        """Return once every item pushed up to ``ticket`` has been committed."""
        async with self._committed:
            await self._committed.wait_for(lambda: self.committed_ticket >= ticket)

    async def flush(self) -> None:
        """Commit everything pushed so far."""
        if self._task is None:
            return
        self._full.set()
        await self.wait_committed(self._ticket)

    async def close(self) -> None:
        """Commit what is buffered and stop the flusher."""
        self._closing = True
        self._has_data.set()
        self._full.set()
        if self._task is not None:
            await self._task
            self._task = None
