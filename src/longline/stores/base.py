"""The Store protocol: what every backend (SQLite, PostgreSQL, DynamoDB) must do.

The whole of longline's "nothing lost, nothing doubled" promise rests on ``append``: the events
and the checkpoint they advance commit in one transaction, existing ``(stream, key)`` pairs are
ignored, and new events get the next gapless per-stream ``seq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from longline.core.model import (
    AppendResult,
    Event,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
)


class StoreError(Exception):
    """A store operation failed; the message never contains credentials."""


@runtime_checkable
class Store(Protocol):
    """A durable event store. All methods are coroutines; blocking work runs off the loop."""

    async def open(self) -> None:
        """Connect and create or migrate the schema (idempotent)."""

    async def close(self) -> None:
        """Flush and release every resource. Safe to call twice."""

    async def append(
        self, stream: str, events: Sequence[Event], checkpoint: str | None = None
    ) -> AppendResult:
        """Atomically insert the new events and save the checkpoint.

        Events whose ``(stream, key)`` is already stored (or repeated within ``events``) are
        dropped and counted as duplicates. New events get consecutive ``seq`` numbers in the
        order given. The checkpoint saved is ``checkpoint`` when given, else the ``cursor`` of
        the last *new* event that carries one (duplicates from a lagging overlapping connection
        must never move the checkpoint backwards); when neither exists it is left unchanged.
        """
        ...

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        ...

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
        ...

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events, with their reasons."""

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        ...

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream (what ``longline status`` shows)."""

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream."""
        ...
