"""The store ceiling: ``INSERT OR IGNORE`` into a ``(stream, key)`` primary-key table.

Batches of 1000 rows, one transaction each, one thread, WAL with ``synchronous=NORMAL`` (what
longline's SQLite store uses too). The events are built in memory first and only the inserts
are timed: this is the fastest SQLite on this disk stores these rows, whatever feeds it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

BATCH = 1000
_TABLE = """CREATE TABLE events (
    stream TEXT NOT NULL, key TEXT NOT NULL, received_at REAL NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (stream, key))"""
_INSERT = "INSERT OR IGNORE INTO events (stream, key, received_at, payload) VALUES (?, ?, ?, ?)"


def insert(db: Path, rows: Sequence[tuple[str, str, float, str]]) -> float:
    """Insert ``(stream, key, received_at, payload)`` rows; return rows/s."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_TABLE)
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            conn.execute("BEGIN")
            conn.executemany(_INSERT, rows[i : i + BATCH])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    if stored != len({(r[0], r[1]) for r in rows}):
        raise RuntimeError(f"raw_sqlite stored {stored} rows")
    return len(rows) / elapsed
