"""The store protocols, one per role, and ``Store``, their union with a lifecycle.

- :class:`EventLog`: events with their checkpoint, quarantine and status (the capture path).
- :class:`DeliveryLog`: delivery cursors per (processor, stream) and dead letters (the outbox).
- :class:`LeaseTable`: one owner per stream, with an epoch that fences older owners.
- :class:`Store`: all three, plus ``open``/``close``; ``async with store:`` opens and closes.

Code types against the narrowest role it uses (the writer an ``EventLog``, the dispatcher an
:class:`Outbox`, a lease keeper a ``LeaseTable``), so a test or a plugin can hand it just that.

The whole of longline's "nothing lost, nothing doubled" promise rests on ``append``: the events
and the checkpoint they advance commit in one transaction, existing ``(stream, key)`` pairs are
ignored, and new events get the next gapless per-stream ``seq``. The lease's fencing lives in
``append`` too (its ``epoch``), because it must be checked in that same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from longline.core.model import (
    AppendResult,
    DeadLetter,
    Event,
    Lease,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)

__all__ = [
    "BatchLeases",
    "BatchStatus",
    "DeliveryLog",
    "EventLog",
    "LeaseTable",
    "Outbox",
    "Store",
    "StoreError",
    "status_json",
]


class StoreError(Exception):
    """A store operation failed; the message never contains credentials.

    ``permanent``: retrying cannot help until someone acts (access denied, wrong credentials,
    a table or schema gone), so a writer gives up after a few tries instead of waiting out
    ``store_patience``.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def status_json(stream: str, status: dict[str, Any]) -> str:
    """A stream's status as every store keeps it: compact JSON, or a ``StoreError``."""
    try:
        return json.dumps(status, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"status of {stream!r} is not JSON-serialisable: {exc}") from exc


@runtime_checkable
class EventLog(Protocol):
    """Events and the checkpoint they advance, quarantine, each stream's totals and status."""

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Atomically insert the new events and save the checkpoint.

        Events whose ``(stream, key)`` is already stored (or repeated within ``events``) are
        dropped and counted as duplicates. New events get consecutive ``seq`` numbers in the
        order given. The checkpoint saved is ``checkpoint`` when given, else the ``cursor`` of
        the last *new* event that carries one (duplicates from a lagging overlapping connection
        must never move the checkpoint backwards); when neither exists it is left unchanged.
        With ``epoch`` given and the stream's lease at a newer epoch, the events are still
        inserted but the checkpoint is not saved, and the result says ``fenced``.

        The same transaction adds the new events, the duplicates and ``reconnects`` (counted by
        the caller since its last append; ``events`` may then be empty) to the stream's
        ``totals``.
        """
        ...

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        ...

    async def last_seq(self, stream: str) -> int:
        """The highest ``seq`` of ``stream``, 0 when it has no events."""
        ...

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
        ...

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Stored events of ``stream`` with the given seqs, in seq order (for re-delivery)."""
        ...

    async def wait_for_events(self, timeout: float) -> None:
        """Return when new events may have been appended, or after ``timeout`` seconds.

        Stores with a notification channel (PostgreSQL LISTEN/NOTIFY) wake at once; others
        just sleep, which makes the dispatcher poll.
        """
        ...

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events, with their reasons, and add them to
        the stream's ``quarantined`` total in the same transaction."""
        ...

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        ...

    async def totals(self) -> dict[str, Totals]:
        """The life-long counters of every stream that has any (what ``longline status``
        shows); streams never written are absent."""
        ...

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream (what ``longline status`` shows)."""
        ...

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream."""
        ...


@runtime_checkable
class DeliveryLog(Protocol):
    """Where each processor is in each stream, and the events it gave up on.

    The store is the processors' outbox: a cursor is a ``seq`` of the :class:`EventLog`.
    """

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """The highest ``seq`` of ``stream`` acknowledged by ``processor`` (0 when none)."""
        ...

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Advance the delivery cursor to ``seq`` (never backwards) in one transaction with
        the dead letters ``dead`` ((event, error, attempts) of events given up on).

        A dead letter is unique per ``(processor, stream, seq)``: failing again updates its
        error, adds to its attempts and keeps its id."""
        ...

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters in id order, of one processor or all."""
        ...

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Remove dead letters (after a successful re-delivery)."""
        ...


@runtime_checkable
class LeaseTable(Protocol):
    """One owner per stream; each take moves to the next epoch, which fences older owners
    (``EventLog.append(epoch=...)`` refuses their checkpoints)."""

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the stream's lease unconditionally, with the next epoch (a handoff successor)."""
        ...

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease with the next epoch only when it is free or expired, else None."""
        ...

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend ``lease`` (and mark it live) if it is still current; return the current lease,
        which has a newer epoch when ``lease`` was superseded."""
        ...

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease, or None when never taken."""
        ...

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease (streams whose lease was never taken are absent): what worker
        mode balances by, in one read."""
        ...


@runtime_checkable
class BatchLeases(Protocol):
    """Optional, beside ``LeaseTable``: many renewals, or takes of free streams, in one store
    call. A worker holding thousands of streams then renews and takes them in a few calls per
    round, not one call (and, on SQLite, one write transaction) per stream; without it, each
    lease is renewed and taken on its own."""

    async def renew_leases(self, renewals: Sequence[tuple[Lease, bool]], ttl: float) -> list[Lease]:
        """``renew_lease(lease, ttl, live)`` for each ``(lease, live)``, in one call; returns
        the lease in force for each, in the same order."""
        ...

    async def acquire_leases(self, streams: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        """``acquire_lease(stream, owner, ttl)`` for each stream, in one call; returns the
        leases taken (streams that were not free or expired are left out)."""
        ...


@runtime_checkable
class BatchStatus(Protocol):
    """Optional: the statuses of many streams saved in one store call. A process holding
    thousands of streams saves all their statuses every ``status_interval``; one call (and, on
    SQLite, one write transaction) per stream was thousands a second, which held the database's
    write lock from everything else (docs/benchmarks.md, worker mode at 50,000 streams)."""

    async def put_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        """``put_status(stream, status)`` for each item, in one call."""
        ...


@runtime_checkable
class Outbox(EventLog, DeliveryLog, Protocol):
    """What delivering to processors needs: the events and the delivery cursors."""


@runtime_checkable
class Store(EventLog, DeliveryLog, LeaseTable, Protocol):
    """A durable event store: every role, and a lifecycle.

    All methods are coroutines; blocking work runs off the loop. ``async with store:`` (or
    ``async with open_store(url) as store:``) opens it and closes it on the way out. Backends
    subclass this protocol to inherit that.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema (idempotent)."""
        ...

    async def close(self) -> None:
        """Flush and release every resource. Safe to call twice."""
        ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
