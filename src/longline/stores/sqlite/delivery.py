"""Delivery cursors and dead letters for ``SQLiteStore`` (the store is the processors' outbox).

Kept apart from ``store.py``: it only adds two tables and the ``DeliveryLog`` methods over
them, and runs on the store's own threads (writes on the writer connection inside
``BEGIN IMMEDIATE``, reads on the reader connection), so it shares the store's one-writer rule.

- ``ack`` moves the cursor with ``MAX(old, new)`` in the same transaction that inserts the dead
  letters it gives up on: a crash between the two cannot skip an event nor lose a dead letter,
  and a late or repeated ack never moves the cursor backwards.
- A dead letter is unique per ``(processor, stream, seq)``: failing again (a ``--retry`` that
  fails) updates its error, adds to its attempts and keeps its id.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from longline.core.model import DeadLetter, StoredEvent
from longline.stores.base import DeliveryLog

__all__ = ["DELIVERY_SCHEMA", "SQLiteDelivery"]

T = TypeVar("T")
_CHUNK = 500  # values per ``IN (...)``; far under SQLite's variable limit

DELIVERY_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS delivery_cursors (
        processor TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
        updated_at REAL NOT NULL, PRIMARY KEY (processor, stream)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT, processor TEXT NOT NULL, stream TEXT NOT NULL,
        seq INTEGER NOT NULL, key TEXT NOT NULL, error TEXT NOT NULL,
        attempts INTEGER NOT NULL, failed_at REAL NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (processor, stream, seq)",
    "CREATE INDEX IF NOT EXISTS dead_letters_processor_id ON dead_letters (processor, id)",
)
_ACK = (
    "INSERT INTO delivery_cursors (processor, stream, seq, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (processor, stream) DO UPDATE SET seq = MAX(seq, excluded.seq),"
    " updated_at = excluded.updated_at"
)
_DEAD = (
    "INSERT INTO dead_letters (processor, stream, seq, key, error, attempts, failed_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (processor, stream, seq) DO UPDATE SET"
    " error = excluded.error, attempts = dead_letters.attempts + excluded.attempts,"
    " failed_at = excluded.failed_at"
)
_DEAD_COLUMNS = "id, processor, stream, seq, key, error, attempts, failed_at"


class SQLiteDelivery(DeliveryLog):
    """The :class:`~longline.stores.base.DeliveryLog` of ``SQLiteStore``, on its threads."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        _writer: ThreadPoolExecutor | None
        _reader: ThreadPoolExecutor | None

        async def _call(
            self, ex: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any
        ) -> T: ...

        async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]: ...

        def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """The highest ``seq`` of ``stream`` acknowledged by ``processor`` (0 when none)."""
        rows = await self._query(
            "SELECT seq FROM delivery_cursors WHERE processor = ? AND stream = ?",
            (processor, stream),
        )
        return int(rows[0][0]) if rows else 0

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Advance the cursor to ``seq`` (never backwards) with the dead letters, atomically."""
        await self._call(self._writer, self._ack, processor, stream, seq, list(dead))

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters in id order, of one processor or all."""
        if limit <= 0:
            return []
        where: str = "id > ?"
        params: tuple[str | int, ...] = (after_id,)
        if processor is not None:
            where, params = ("processor = ? AND id > ?", (processor, after_id))
        rows = await self._query(
            f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [DeadLetter(*row) for row in rows]

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Remove dead letters (after a successful re-delivery)."""
        if ids:
            await self._call(self._writer, self._drop, list(ids))

    # -- on the writer thread ----------------------------------------------------------------

    def _ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: list[tuple[StoredEvent, str, int]],
    ) -> None:
        now = time.time()
        rows = [(processor, stream, ev.seq, ev.key, err, n, now) for ev, err, n in dead]
        with self._transaction() as conn:
            if rows:
                conn.executemany(_DEAD, rows)
            conn.execute(_ACK, (processor, stream, seq, now))

    def _drop(self, ids: list[int]) -> None:
        with self._transaction() as conn:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM dead_letters WHERE id IN ({marks})", chunk)


def _chunks(items: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
