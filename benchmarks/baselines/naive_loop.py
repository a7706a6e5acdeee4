"""The seed's shape: read a line (or message), parse it, insert it, commit, repeat.

Written the way the blog post's loop would grow a database: aiohttp's per-line iteration,
``json.loads``, and Python's ``sqlite3`` with its defaults (rollback journal, ``synchronous``
FULL), one commit per event. ``wal=True`` gives the same loop a WAL journal, for reference.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import aiohttp


async def capture(
    url: str, transport: str, db: Path, seconds: float, *, wal: bool = False
) -> float:
    """Capture for about ``seconds``; return committed events/s."""
    conn = sqlite3.connect(db)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS events (key TEXT PRIMARY KEY, payload TEXT)")
    got = 0
    start = time.perf_counter()
    deadline = start + seconds

    def store(text: str) -> None:
        event = json.loads(text)
        conn.execute(
            "INSERT OR IGNORE INTO events (key, payload) VALUES (?, ?)", (str(event["id"]), text)
        )
        conn.commit()

    try:
        async with aiohttp.ClientSession() as session:
            if transport == "ws":
                async with session.ws_connect(url) as ws:
                    async for msg in ws:
                        store(msg.data)
                        got += 1
                        if time.perf_counter() >= deadline:
                            break
            else:
                async with session.get(url) as resp:
                    async for raw in resp.content:
                        line = raw.decode().strip()
                        if transport == "sse":
                            if not line.startswith("data:"):
                                continue
                            line = line[5:].strip()
                        if not line:
                            continue
                        store(line)
                        got += 1
                        if time.perf_counter() >= deadline:
                            break
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return got / elapsed
