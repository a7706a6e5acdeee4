"""A store that keeps nothing: capture with it measures framing, keying and batching alone.

It satisfies the ``Store`` protocol so the real ``Runner`` uses it unchanged; ``append`` only
counts, so every event is "new" and seqs are consecutive, as the contract asks of a store that
never sees duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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


class NullStore:
    """Counts appends; stores nothing."""

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}
        self._leases: dict[str, Lease] = {}
        self.quarantined = 0

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def __aenter__(self) -> NullStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Nothing to close."""

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Count the batch as new events."""
        seq = self._seq.get(stream, 0) + len(events)
        self._seq[stream] = seq
        return AppendResult(new=len(events), duplicates=0, last_seq=seq)

    async def checkpoint(self, stream: str) -> str | None:
        """No cursor is ever kept."""
        return None

    async def last_seq(self, stream: str) -> int:
        """The seq of the last counted event."""
        return self._seq.get(stream, 0)

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Nothing is stored."""
        return []

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Count what would be quarantined."""
        self.quarantined += len(items)

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Nothing is stored."""
        return []

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Status is dropped."""

    async def totals(self) -> dict[str, Totals]:
        """No totals are kept."""
        return {}

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """No status is kept."""
        return {}

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """Nothing was delivered."""
        return 0

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Acks are dropped."""

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """No dead letters are kept."""
        return []

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Nothing to drop."""

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Nothing is stored."""
        return []

    async def wait_for_events(self, timeout: float) -> None:
        """Never any events: the dispatcher would just poll."""

    # -- leases: kept in memory so a runner that takes them works unchanged ------------------

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the lease with the next epoch."""
        old = self._leases.get(stream)
        lease = Lease(stream, owner, (old.epoch if old else 0) + 1, time.time() + ttl)
        self._leases[stream] = lease
        return lease

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease when free or expired."""
        old = self._leases.get(stream)
        if old is not None and old.owner != owner and old.expires_at > time.time():
            return None
        return await self.take_lease(stream, owner, ttl)

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend ``lease`` if it is still current."""
        current = self._leases.get(lease.stream)
        if current is None or current.epoch != lease.epoch:
            return current or lease
        renewed = Lease(lease.stream, lease.owner, lease.epoch, time.time() + ttl, live)
        self._leases[lease.stream] = renewed
        return renewed

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease, or None."""
        return self._leases.get(stream)

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease."""
        return dict(self._leases)
