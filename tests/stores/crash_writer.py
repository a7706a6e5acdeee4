"""Append k1..kN to a SQLite store, resuming from its checkpoint; the crash test SIGKILLs it.

Usage: ``python crash_writer.py DB TOTAL BATCH OVERLAP``. Prints ``ready`` once the store is
open, then the ``last_seq`` of every committed append, then ``done``. Each run resumes
``OVERLAP`` keys before the stored checkpoint, as a reconnecting provider replays a little,
so duplicates are exercised too; new batches pass ``checkpoint=`` their last key.
"""

from __future__ import annotations

import asyncio
import sys
import time

from longline.core.model import Event
from longline.stores.sqlite import SQLiteStore

STREAM = "crash"


async def run(path: str, total: int, batch: int, overlap: int) -> None:
    store = SQLiteStore(path)
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
        # An explicit checkpoint always wins, so the replayed overlap must not pass one (it
        # would move the checkpoint backwards); it relies on "duplicates never move it".
        explicit = f"k{numbers[-1]}" if numbers[-1] > done else None
        result = await store.append(STREAM, events, checkpoint=explicit)
        print(result.last_seq, flush=True)
        n = numbers[-1]
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    db, total, batch, overlap = sys.argv[1], *map(int, sys.argv[2:5])
    asyncio.run(run(db, total, batch, overlap))
