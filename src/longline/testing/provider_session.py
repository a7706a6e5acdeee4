"""One connection's share of a feed: which events it sends, when, and which faults it injects.

The loop is written once against a small ``Sink`` (how a transport frames and ends things), so
SSE, lines and WebSocket misbehave in exactly the same way.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Sequence
from typing import Protocol

from longline.testing.provider_feeds import (
    FeedClock,
    FeedParams,
    FeedState,
    event_bytes,
    oversize_body,
)

BATCH_BYTES = 64 * 1024  # unpaced: write this much per call, not one event per call
BATCH_MAX = 1024

_CUT, _DISCONNECT, _STALL = "cut", "disconnect", "stall"


class Sink(Protocol):
    """How one transport writes events, faults and endings to its connection."""

    async def send_events(self, batch: Sequence[tuple[int, bytes]]) -> None:
        """Write ``(id, json)`` events, framed, as few writes as the transport allows."""

    async def send_malformed(self) -> None:
        """Write one item that is not valid JSON."""

    async def send_oversize(self, body: bytes) -> None:
        """Write one very large item."""

    async def send_keepalive(self) -> None:
        """Write the transport's keep-alive."""

    async def cut(self, n: int, body: bytes) -> None:
        """Write the first half of event ``n``'s framed bytes, then drop the connection."""

    async def close(self, abrupt: bool, *, going_away: bool = False) -> None:
        """End the connection: a normal close, or a bare transport close when ``abrupt``."""

    def stall(self) -> None:
        """Stop reading from the peer (no more pongs) while the socket stays open."""


def start_id(params: FeedParams, feed: FeedState, hint: int | None, now: float) -> int:
    """First event id a new connection sends: resume hint + 1, else live (paced) or 1."""
    if hint is not None and params.resumable:
        return hint + 1
    if params.rate > 0:
        return feed.clock(params.rate, now).published(now) + 1
    return 1


def _ending(params: FeedParams) -> tuple[int, str | None]:
    """The fault that ends this connection first (ties: cut, then disconnect, then stall)."""
    options = [(params.cut_every, 0, _CUT), (params.disconnect_every, 1, _DISCONNECT)]
    options.append((params.stall_after, 2, _STALL))
    chosen = min((opt for opt in options if opt[0] > 0), default=None)
    return (chosen[0], chosen[2]) if chosen else (0, None)


class Session:
    """Streams events from ``next_id`` on, paced or not, applying the connection's faults."""

    def __init__(self, sink: Sink, feed: FeedState, params: FeedParams, next_id: int) -> None:
        self._sink = sink
        self._feed = feed
        self._params = params
        self._loop = asyncio.get_running_loop()
        self._clock: FeedClock | None = None
        if params.rate > 0:
            self._clock = feed.clock(params.rate, self._loop.time())
        self.next_id = next_id
        self._pending: int | None = None
        self._wake = asyncio.Event()
        self._batch = max(1, min(BATCH_MAX, BATCH_BYTES // max(1, params.size)))

    def reposition(self, next_id: int) -> None:
        """Continue from ``next_id`` (a late subscribe message); applied before the next write."""
        self._pending = next_id
        self._wake.set()

    async def run(self) -> None:
        """Send until a fault ends the connection; otherwise forever (the caller cancels)."""
        p = self._params
        end_count, end_action = _ending(p)
        limit = p.total if p.total is not None else sys.maxsize
        sent = 0
        last_write = self._loop.time()
        while True:
            if self._pending is not None:
                self.next_id, self._pending = self._pending, None
            now = self._loop.time()
            available = limit if self._clock is None else min(limit, self._clock.published(now))
            if end_action is not None and sent >= end_count:
                if end_action != _CUT or self.next_id > limit:
                    await self._end(end_action)
                    return
                if self.next_id <= available:
                    await self._sink.cut(self.next_id, self._event(self.next_id))
                    return
            if self.next_id > available:
                if await self._idle(now, last_write, limit):
                    last_write = self._loop.time()
                continue
            count = min(available - self.next_id + 1, self._batch)
            if end_action is not None:
                count = min(count, end_count - sent)
            for every in (p.malformed_every, p.oversize_every):
                if every:
                    count = min(count, every - (self.next_id - 1) % every)
            await self._send(self.next_id, count)
            sent += count
            self.next_id += count
            last_write = self._loop.time()
            await asyncio.sleep(0)  # an unpaced feed must not starve the other connections

    def _event(self, n: int) -> bytes:
        return event_bytes(self._feed.name, n, self._params.size)

    async def _send(self, first: int, count: int) -> None:
        p, stats = self._params, self._feed.stats
        last = first + count - 1
        await self._sink.send_events([(n, self._event(n)) for n in range(first, last + 1)])
        stats.events_sent += count
        stats.max_id_sent = max(stats.max_id_sent, last)
        if p.malformed_every and last % p.malformed_every == 0:
            await self._sink.send_malformed()
            stats.malformed_sent += 1
        if p.oversize_every and last % p.oversize_every == 0:
            await self._sink.send_oversize(oversize_body(p.oversize_bytes))
            stats.oversize_sent += 1

    async def _idle(self, now: float, last_write: float, limit: int) -> bool:
        """Wait for the next publication, a keep-alive or a reposition; True if one was sent."""
        deadline = math.inf
        if self._clock is not None and self.next_id <= limit:
            deadline = self._clock.due_at(self.next_id)
        every = self._params.keepalive or 0.0
        keepalive_at = last_write + every if every > 0 else math.inf
        wake_at = min(deadline, keepalive_at)
        self._wake.clear()
        try:
            async with asyncio.timeout_at(None if math.isinf(wake_at) else wake_at):
                await self._wake.wait()
        except TimeoutError:
            pass
        if self._pending is None and self._loop.time() >= keepalive_at:
            await self._sink.send_keepalive()
            return True
        return False

    async def _end(self, action: str) -> None:
        if action != _STALL:  # a cut with no next event to cut: drop the connection
            await self._sink.close(self._params.abrupt or action == _CUT)
            return
        self._sink.stall()
        await self._loop.create_future()  # until the client goes away or the server stops
