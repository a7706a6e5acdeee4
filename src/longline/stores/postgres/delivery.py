"""Delivery cursors and dead letters for ``PostgresStore`` (the store is the processors' outbox).

Kept apart from ``store.py``, as for every backend: these only coordinate processors through
two small tables, over the store's own pool (``_conn``), away from the capture path.
``ack`` moves the cursor with ``GREATEST(old, new)`` in the transaction that records the dead
letters, so a crash between the two can neither skip an event nor lose a dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from longline.core.model import DeadLetter, StoredEvent
from longline.stores.base import DeliveryLog

__all__ = ["PostgresDelivery"]


class PostgresDelivery(DeliveryLog):
    """The :class:`~longline.stores.base.DeliveryLog` of ``PostgresStore``."""

    if TYPE_CHECKING:  # provided by PostgresStore

        def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """The highest ``seq`` of ``stream`` acknowledged by ``processor`` (0 when none)."""
        async with self._conn("read a delivery cursor from") as conn:
            value = await conn.fetchval(
                "SELECT seq FROM delivery WHERE processor = $1 AND stream = $2", processor, stream
            )
        return int(value or 0)

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Advance the delivery cursor (never backwards) and add dead letters, atomically."""
        now = time.time()
        async with self._conn("acknowledge in") as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO delivery (processor, stream, seq, updated_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (processor, stream) DO UPDATE"
                " SET seq = GREATEST(delivery.seq, excluded.seq), updated_at = excluded.updated_at",
                processor,
                stream,
                seq,
                now,
            )
            if dead:
                await conn.executemany(
                    "INSERT INTO dead_letters (processor, stream, seq, key, error, attempts,"
                    " failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (processor, stream, seq) DO UPDATE SET error = excluded.error,"
                    " attempts = dead_letters.attempts + excluded.attempts,"
                    " failed_at = excluded.failed_at",
                    [(processor, stream, e.seq, e.key, err, n, now) for e, err, n in dead],
                )

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters in id order, of one processor or all."""
        if limit <= 0:
            return []
        async with self._conn("read dead letters from") as conn:
            rows = await conn.fetch(
                "SELECT id, processor, stream, seq, key, error, attempts, failed_at"
                " FROM dead_letters WHERE ($1::text IS NULL OR processor = $1) AND id > $2"
                " ORDER BY id LIMIT $3",
                processor,
                after_id,
                limit,
            )
        return [DeadLetter(*row) for row in rows]

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Remove dead letters (after a successful re-delivery)."""
        if not ids:
            return
        async with self._conn("drop dead letters from") as conn:
            await conn.execute("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", list(ids))
