"""In-memory store (``memory://NAME``): every role, with the same semantics as the real backends.

For tests (yours and longline's) and for trying things out: nothing survives the process.
It is run by the same contract suite as SQLite, PostgreSQL and DynamoDB, so code tested on it
sees the promises it will get in production: ``append`` is atomic with its checkpoint,
idempotent on ``(stream, key)``, numbers new events gaplessly and refuses the checkpoint of a
fenced epoch; delivery cursors never move back and commit with their dead letters; leases move
to the next epoch on every take.

- ``memory://NAME``: every store opened on the same name in one process shares its contents
  (as processes share a database file), and they stay after ``close`` until :func:`forget`.
- ``memory://``: a private store; its contents live as long as the object, across reopening.

Every method runs to completion without yielding to the event loop, which is what makes each
one a transaction here; a store is meant for one event loop (and thread) at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from longline.stores.base import BatchLeases, BatchStatus, Store, StoreError, status_json
from longline.stores.registry import StoreKind

__all__ = ["KIND", "MemoryStore", "forget"]


@dataclass(slots=True)
class _Data:
    """What one store holds: what the tables of the SQL backends hold."""

    events: dict[str, list[StoredEvent]] = field(default_factory=dict)  # seq n at index n - 1
    keys: dict[str, set[str]] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    quarantine: dict[str, list[StoredQuarantine]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # JSON text, so readers get copies
    cursors: dict[tuple[str, str], int] = field(default_factory=dict)
    dead: dict[tuple[str, str, int], DeadLetter] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    totals: dict[str, Totals] = field(default_factory=dict)
    last_id: int = 0  # quarantine and dead letter ids
    wakes: list[asyncio.Event] = field(default_factory=list)  # of the open instances

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def count(
        self, stream: str, events: int = 0, dups: int = 0, quar: int = 0, rec: int = 0
    ) -> None:
        """Add to the stream's totals (in the same call as the writes they count)."""
        t = self.totals.get(stream, Totals())
        self.totals[stream] = Totals(
            t.events + events, t.duplicates + dups, t.quarantined + quar, t.reconnects + rec
        )


_NAMED: dict[str, _Data] = {}


def forget(name: str) -> None:
    """Drop the contents of the store ``memory://NAME`` (instances still open keep them)."""
    _NAMED.pop(name, None)


class MemoryStore(Store, BatchLeases, BatchStatus):
    """A :class:`~longline.stores.base.Store` in this process's memory.

    ``name`` shares the contents with every other ``MemoryStore`` of that name; without one
    the store is private to this object. ``create=False`` refuses to open a name nothing in
    this process has opened yet (as a reading command refuses a SQLite file that is not there).
    """

    def __init__(self, name: str | None = None, *, create: bool = True) -> None:
        self.name = name
        self.create = create
        self._private = _Data() if name is None else None
        self._data: _Data | None = None
        self._wake = asyncio.Event()

    @property
    def _where(self) -> str:
        return f"memory://{self.name or ''}"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Attach to the named contents (made on first use). Idempotent."""
        if self._data is not None:
            return
        if self._private is not None:
            self._data = self._private
        else:
            assert self.name is not None
            if not self.create and self.name not in _NAMED:
                raise StoreError(f"no memory store {self._where} in this process")
            self._data = _NAMED.setdefault(self.name, _Data())
        self._data.wakes.append(self._wake)

    async def close(self) -> None:
        """Detach; the contents stay. Safe to call twice."""
        data, self._data = self._data, None
        if data is not None:
            data.wakes.remove(self._wake)

    def _open(self) -> _Data:
        if self._data is None:
            raise StoreError(f"memory store {self._where} is not open")
        return self._data

    # -- EventLog --------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Insert new events and save the checkpoint, at once (see ``EventLog``)."""
        data = self._open()
        rows = [_checked(ev) for ev in events]  # every check before any change: all or nothing
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise StoreError(f"append to {stream!r}: the checkpoint must be a string")
        lease = data.leases.get(stream)
        fenced = epoch is not None and lease is not None and lease.epoch > epoch
        stored = data.events.setdefault(stream, [])
        keys = data.keys.setdefault(stream, set())
        cursor = checkpoint
        new = 0
        for ev in rows:
            if ev.key in keys:
                continue
            keys.add(ev.key)
            stored.append(
                StoredEvent(
                    len(stored) + 1,
                    ev.key,
                    ev.cursor,
                    float(ev.received_at),
                    ev.payload,
                    ev.event,
                    epoch,
                )
            )
            new += 1
            if checkpoint is None and ev.cursor is not None:
                cursor = ev.cursor
        if cursor is not None and not fenced:
            data.checkpoints[stream] = cursor
        data.count(stream, new, len(rows) - new, rec=reconnects)
        if new:
            for wake in data.wakes:
                wake.set()
        return AppendResult(new, len(rows) - new, len(stored), fenced)

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        return self._open().checkpoints.get(stream)

    async def last_seq(self, stream: str) -> int:
        """The highest ``seq`` of ``stream``, 0 when it has no events."""
        return len(self._open().events.get(stream, ()))

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
        stored = self._open().events.get(stream, [])
        if limit <= 0:
            return []
        start = max(after_seq, 0)
        return stored[start : start + limit]

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Stored events of ``stream`` with the given seqs, in seq order."""
        stored = self._open().events.get(stream, [])
        return [stored[s - 1] for s in sorted(set(seqs)) if 0 < s <= len(stored)]

    async def wait_for_events(self, timeout: float) -> None:
        """Return as soon as an append adds events (to this store, from any instance of its
        name), or after ``timeout`` seconds."""
        self._open()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._wake.clear()

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events, with their reasons."""
        data = self._open()
        kept = [
            StoredQuarantine(0, str(q.reason), bytes(q.raw), float(q.received_at)) for q in items
        ]
        data.quarantine.setdefault(stream, []).extend(replace(q, id=data.next_id()) for q in kept)
        if kept:
            data.count(stream, quar=len(kept))

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        items = self._open().quarantine.get(stream, [])
        return [q for q in items if q.id > after_id][: max(limit, 0)]

    async def totals(self) -> dict[str, Totals]:
        """The life-long counters of every stream that has any."""
        return dict(self._open().totals)

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream (kept as JSON, as the other stores do)."""
        await self.put_statuses({stream: status})

    async def put_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        """Save many statuses at once (``BatchStatus``): all of them, or none if one is not
        JSON."""
        data = self._open()
        saved = {stream: status_json(stream, status) for stream, status in statuses.items()}
        data.status.update(saved)

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream."""
        saved = self._open().status
        return {stream: json.loads(saved[stream]) for stream in sorted(saved)}

    # -- DeliveryLog -----------------------------------------------------------------------

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """The highest ``seq`` of ``stream`` acknowledged by ``processor`` (0 when none)."""
        return self._open().cursors.get((processor, stream), 0)

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Advance the cursor to ``seq`` (never backwards) with the dead letters, at once."""
        data = self._open()
        now = time.time()
        for ev, error, attempts in dead:
            ref = (processor, stream, ev.seq)
            old = data.dead.get(ref)
            data.dead[ref] = DeadLetter(
                old.id if old else data.next_id(),
                processor,
                stream,
                ev.seq,
                ev.key,
                str(error),
                (old.attempts if old else 0) + attempts,
                now,
            )
        lane = (processor, stream)
        data.cursors[lane] = max(data.cursors.get(lane, 0), seq)

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters in id order, of one processor or all."""
        letters = sorted(self._open().dead.values(), key=lambda d: d.id)
        wanted = [d for d in letters if d.id > after_id and processor in (None, d.processor)]
        return wanted[: max(limit, 0)]

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Remove dead letters (after a successful re-delivery)."""
        data = self._open()
        gone = set(ids)
        for ref in [ref for ref, d in data.dead.items() if d.id in gone]:
            del data.dead[ref]

    # -- LeaseTable ------------------------------------------------------------------------

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the lease unconditionally with the next epoch (see ``LeaseTable``)."""
        lease = self._take(stream, owner, ttl, force=True)
        assert lease is not None
        return lease

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease only when it is free or expired (see ``LeaseTable``)."""
        return self._take(stream, owner, ttl, force=False)

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend a current lease; return the lease in force (see ``LeaseTable``)."""
        leases = self._open().leases
        current = leases.get(lease.stream)
        if current is None or current.epoch != lease.epoch:
            return current or lease
        renewed = replace(current, expires_at=time.time() + ttl, live=current.live or live)
        leases[lease.stream] = renewed
        return renewed

    async def renew_leases(self, renewals: Sequence[tuple[Lease, bool]], ttl: float) -> list[Lease]:
        """Renew many leases at once (see ``BatchLeases``)."""
        return [await self.renew_lease(lease, ttl, live) for lease, live in renewals]

    async def acquire_leases(self, streams: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        """Take the free or expired ones of ``streams`` at once (see ``BatchLeases``)."""
        taken = (self._take(stream, owner, ttl, force=False) for stream in streams)
        return [lease for lease in taken if lease is not None]

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease, or None when never taken."""
        return self._open().leases.get(stream)

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease."""
        return dict(self._open().leases)

    def _take(self, stream: str, owner: str, ttl: float, force: bool) -> Lease | None:
        leases = self._open().leases
        now = time.time()
        old = leases.get(stream)
        if not force and old is not None and old.expires_at > now:
            return None
        lease = Lease(stream, owner, (old.epoch if old else 0) + 1, now + ttl, False)
        leases[stream] = lease
        return lease


def _checked(ev: Event) -> Event:
    """``ev`` when its fields have the types a database column would demand, else StoreError."""
    ok = (
        isinstance(ev.key, str)
        and isinstance(ev.payload, str)
        and isinstance(ev.cursor, str | None)
        and isinstance(ev.event, str | None)
        and isinstance(ev.received_at, int | float)
    )
    if not ok:
        raise StoreError(f"event {ev.key!r} has a field of the wrong type (or a null payload)")
    return ev


def from_url(url: str, *, create: bool = True) -> MemoryStore:
    """Build a store from ``memory://NAME`` (shared by name in this process) or ``memory://``."""
    head, sep, name = url.partition("://")
    if head.lower() != "memory" or not sep or any(c in name for c in "/?#"):
        raise StoreError("a memory store URL looks like memory://NAME (or memory:// alone)")
    return MemoryStore(name or None, create=create)


def _open(url: str, *, create_tables: bool, create: bool) -> MemoryStore:
    return from_url(url, create=create)


KIND = StoreKind("memory", _open, "memory://NAME")
"""``memory://NAME`` (entry point ``longline.stores``)."""
