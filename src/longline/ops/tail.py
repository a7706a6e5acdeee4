"""``longline tail``: print events as they are committed, from any process that can open the store.

It only reads the store, so it follows a ``longline run`` on another machine as well as one
beside it. PostgreSQL wakes it at once (``LISTEN``/``NOTIFY``, via ``Store.wait_for_events``);
SQLite and DynamoDB have no such channel, so it polls, backing off from ``POLL_MIN`` to
``POLL_MAX`` while nothing arrives and going back to ``POLL_MIN`` when something does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from longline.config import Config
from longline.core.model import StoredEvent
from longline.processors.base import parse_payload
from longline.stores import open_store
from longline.stores.base import EventLog

__all__ = [
    "POLL_MAX",
    "POLL_MIN",
    "event_record",
    "follow",
    "last_seq",
    "run_until_interrupted",
    "tail",
]

POLL_MIN = 0.05
POLL_MAX = 2.0
PAGE = 1000


def event_record(ev: StoredEvent) -> dict[str, Any]:
    """The NDJSON object of one stored event (``longline events`` and ``tail`` print it)."""
    obj: dict[str, Any] = {
        "seq": ev.seq,
        "key": ev.key,
        "cursor": ev.cursor,
        "received_at": ev.received_at,
        "payload": parse_payload(ev.payload),
    }
    if ev.event is not None:
        obj["event"] = ev.event
    return obj


async def last_seq(store: EventLog, stream: str) -> int:
    """The highest stored seq of ``stream`` (0 when empty), in O(log n) one-event reads: the
    store has no "last" query, but ``read(after=x)`` is non-empty exactly when it exceeds x."""

    async def beyond(x: int) -> bool:
        return bool(await store.read(stream, x, 1))

    low, high = 0, 1  # invariant: last >= low; probe high until last < high
    while await beyond(high - 1):
        low, high = high, high * 2
    while high - low > 1:  # last in [low, high)
        mid = (low + high) // 2
        if await beyond(mid - 1):
            low = mid
        else:
            high = mid
    return low


async def follow(
    store: EventLog,
    starts: dict[str, int],
    *,
    live: bool,
    poll_min: float = POLL_MIN,
    poll_max: float = POLL_MAX,
) -> AsyncIterator[tuple[str, list[StoredEvent]]]:
    """Batches of events after each stream's start seq, in seq order per stream; with ``live``
    it never ends (cancel it), else it ends once everything stored so far was given."""
    after = dict(starts)
    delay = poll_min
    while True:
        got = False
        for stream in after:
            while batch := await store.read(stream, after[stream], PAGE):
                after[stream] = batch[-1].seq
                got = True
                yield stream, batch
                if len(batch) < PAGE:
                    break
        if not live:
            return
        delay = poll_min if got else min(delay * 2, poll_max)
        await store.wait_for_events(delay)


async def tail(
    cfg: Config, streams: Sequence[str], after: int | None, lines: int, live: bool
) -> None:
    out = sys.stdout.buffer
    # Reading only: never creates a SQLite file.
    async with open_store(cfg.store, create=False) as store:
        starts = {
            s: after if after is not None else max(0, await last_seq(store, s) - lines)
            for s in streams
        }
        async for stream, batch in follow(store, starts, live=live):
            out.write(b"".join(
                orjson.dumps({"stream": stream, **event_record(ev)}) + b"\n" for ev in batch
            ))  # fmt: skip
            out.flush()


def run_until_interrupted(work: Any) -> None:
    """Run ``work`` (a coroutine); SIGINT/SIGTERM cancel it and end the command with exit 0."""

    async def main() -> None:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    except BrokenPipeError:  # `longline tail ... | head`: the reader is gone, and so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
