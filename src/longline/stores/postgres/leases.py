"""Leases for ``PostgresStore``: one owner per stream, with an epoch that fences older owners.

A lease is taken while holding the stream's row lock in ``streams``: the same lock ``append``
holds while it checks the epoch, so a handoff and an append never interleave. The taker waits
at most ``LOCK_WAIT`` for it (``ACQUIRE_LOCK_WAIT`` for a free or expired lease), and reads
the clock only once it holds it: an owner frozen
mid-append (SIGSTOP) once made takers wait as long as the freeze and then grant leases that had
expired while they waited.
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg

from longline.core.model import Lease
from longline.stores.base import LeaseTable, StoreError

__all__ = ["ADD_STREAM", "LOCK_STREAM", "PostgresLeases"]

# The stream's row in ``streams`` is its lock: ``append`` holds it while it numbers events and
# checks the epoch, a lease is taken while holding it.
ADD_STREAM = "INSERT INTO streams (stream, updated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
LOCK_STREAM = "SELECT last_seq FROM streams WHERE stream = $1 FOR UPDATE"
LOCK_WAIT = 2.0  # seconds a lease taker waits for a stream's row lock
# An acquirer (of a free or expired lease) waits less: the row of a stream whose lease
# expired is usually locked only by an owner that died or froze mid-commit, and a worker
# taking a frozen worker's streams must not spend 2 s on each of those before the others.
ACQUIRE_LOCK_WAIT = 0.5
_LEASE = "SELECT stream, owner, epoch, expires_at, live FROM leases WHERE stream = $1"


class _Locked(Exception):
    """The stream's row stayed locked for ``LOCK_WAIT``."""


class PostgresLeases(LeaseTable):
    """The :class:`~longline.stores.base.LeaseTable` of ``PostgresStore``."""

    if TYPE_CHECKING:  # provided by PostgresStore

        def _conn(self, doing: str) -> AbstractAsyncContextManager[Any]: ...

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease, or None when never taken."""
        async with self._conn("read a lease from") as conn:
            row = await conn.fetchrow(_LEASE, stream)
        return _lease(row)

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease."""
        async with self._conn("read the leases from") as conn:
            rows = await conn.fetch("SELECT stream, owner, epoch, expires_at, live FROM leases")
        return {row[0]: lease for row in rows if (lease := _lease(row)) is not None}

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the lease unconditionally with the next epoch (see ``LeaseTable``)."""
        lease = await self._take(stream, owner, ttl, force=True)
        if lease is None:
            raise StoreError(
                f"PostgreSQL: could not take the lease of {stream!r}: its row stayed locked"
                f" for {LOCK_WAIT:g}s (a writer stuck in a transaction)"
            )
        return lease

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease with the next epoch only when it is free or expired."""
        return await self._take(stream, owner, ttl, force=False)

    async def _take(self, stream: str, owner: str, ttl: float, force: bool) -> Lease | None:
        """None when not free (unless ``force``) or when the stream's row stays locked: a
        taker must never wait long on an owner stuck in a transaction (a frozen process)."""
        try:
            async with self._conn("take a lease in") as conn, conn.transaction():
                wait = LOCK_WAIT if force else ACQUIRE_LOCK_WAIT
                await conn.execute(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'")
                try:  # serializes with appends of the stream (both wait for one under way)
                    await conn.execute(ADD_STREAM, stream, time.time())
                    await conn.execute(LOCK_STREAM, stream)
                except asyncpg.LockNotAvailableError as exc:
                    raise _Locked from exc
                now = time.time()  # after the wait: never grant a lease already expired
                old = _lease(await conn.fetchrow(_LEASE, stream))
                if not force and old is not None and old.expires_at > now:
                    return None
                lease = Lease(stream, owner, (old.epoch if old else 0) + 1, now + ttl, False)
                await conn.execute(
                    "INSERT INTO leases (stream, owner, epoch, expires_at, live)"
                    " VALUES ($1, $2, $3, $4, false) ON CONFLICT (stream) DO UPDATE SET"
                    " owner = excluded.owner, epoch = excluded.epoch,"
                    " expires_at = excluded.expires_at, live = false",
                    lease.stream,
                    lease.owner,
                    lease.epoch,
                    lease.expires_at,
                )
                return lease
        except _Locked:
            return None

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend ``lease`` if it is still current; return the lease in force."""
        async with self._conn("renew a lease in") as conn:
            row = await conn.fetchrow(
                "UPDATE leases SET expires_at = $3, live = live OR $4"
                " WHERE stream = $1 AND epoch = $2"
                " RETURNING stream, owner, epoch, expires_at, live",
                lease.stream,
                lease.epoch,
                time.time() + ttl,
                live,
            )
            if row is None:
                row = await conn.fetchrow(_LEASE, lease.stream)
        return _lease(row) or lease


def _lease(row: Any) -> Lease | None:
    if row is None:
        return None
    return Lease(row[0], row[1], int(row[2]), float(row[3]), bool(row[4]))
