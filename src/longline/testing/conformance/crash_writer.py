"""Append k1..kN to any store URL, resuming from its checkpoint; the crash test SIGKILLs it.

Usage: ``python crash_writer.py URL TOTAL BATCH OVERLAP``. Prints ``ready`` once the store is
open, then the ``last_seq`` of every committed append, then ``done``. Each run resumes
``OVERLAP`` keys before the stored checkpoint, as a reconnecting provider replays a little, so
duplicates are exercised too; batches that reach new keys pass ``checkpoint=`` their last key.
"""

from __future__ import annotations

import asyncio
import sys
import time

from longline.core.model import Event
from longline.stores import open_store

STREAM = "crash"


async def run(url: str, total: int, batch: int, overlap: int) -> None:
    store = open_store(url, create_tables=True)
    await store.open()
    cursor = await store.checkpoint(STREAM)
    done = int(cursor[1:]) if cursor else 0
    n = max(0, done - overlap)
    print("ready", flush=True)
    while n < total:
        numbers = range(n + 1, min(n + batch, total) + 1)
        events = [
            Event(key=f"k{i}", payload=f'{{"n":{i}}}', cursor=f"k{i}", received_at=time.time())
            for i in numbers
        ]
        # The replayed overlap passes no checkpoint: "duplicates never move it" keeps it put.
        explicit = f"k{numbers[-1]}" if numbers[-1] > done else None
        result = await store.append(STREAM, events, checkpoint=explicit)
        print(result.last_seq, flush=True)
        n = numbers[-1]
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    url, total, batch, overlap = sys.argv[1], *map(int, sys.argv[2:5])
    asyncio.run(run(url, total, batch, overlap))
