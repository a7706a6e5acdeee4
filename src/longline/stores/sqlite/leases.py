"""Stream leases for SQLite: one owner per stream, with an epoch that fences older owners.

The lease rows are read and written on the SQLite store's writer thread, inside its
``BEGIN IMMEDIATE`` transactions, so taking a lease and checking it in ``append`` are
serialized with every other write; ``get_lease`` reads on the reader connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from longline.core.model import Lease
from longline.stores.base import BatchLeases, LeaseTable

__all__ = ["LEASES_SCHEMA", "SQLiteLeases"]

T = TypeVar("T")

LEASES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS leases (
        stream TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL,
        expires_at REAL NOT NULL, live INTEGER NOT NULL DEFAULT 0)""",
)

_GET = "SELECT stream, owner, epoch, expires_at, live FROM leases WHERE stream = ?"
_PUT = (
    "INSERT INTO leases (stream, owner, epoch, expires_at, live) VALUES (?, ?, ?, ?, 0)"
    " ON CONFLICT (stream) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch,"
    " expires_at = excluded.expires_at, live = 0"
)


_RENEW = (
    "UPDATE leases SET expires_at = ?, live = MAX(live, ?) WHERE stream = ? AND epoch = ?"
    " RETURNING owner, live"
)


class SQLiteLeases(LeaseTable, BatchLeases):
    """The :class:`~longline.stores.base.LeaseTable` of ``SQLiteStore``, on its threads, with
    batched renewals (``BatchLeases``)."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        _writer: ThreadPoolExecutor | None
        _reader: ThreadPoolExecutor | None
        _rconn: sqlite3.Connection | None

        async def _call(
            self, ex: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any
        ) -> T: ...

        def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _not_open(self) -> Exception: ...

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the lease unconditionally with the next epoch (see ``LeaseTable``)."""
        lease: Lease | None = await self._call(
            self._writer, self._in_txn, self._take, stream, owner, ttl, True
        )
        assert lease is not None
        return lease

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease only when it is free or expired (see ``LeaseTable``)."""
        lease: Lease | None = await self._call(
            self._writer, self._in_txn, self._take, stream, owner, ttl, False
        )
        return lease

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend a current lease; return the lease in force (see ``LeaseTable``)."""
        current: Lease = await self._call(self._writer, self._in_txn, self._renew, lease, ttl, live)
        return current

    async def renew_leases(self, renewals: Sequence[tuple[Lease, bool]], ttl: float) -> list[Lease]:
        """Renew many leases in one write transaction (see ``BatchLeases``)."""
        current: list[Lease] = await self._call(
            self._writer, self._in_txn, self._renew_all, list(renewals), ttl
        )
        return current

    async def acquire_leases(self, streams: Sequence[str], owner: str, ttl: float) -> list[Lease]:
        """Take the free or expired ones of ``streams`` in one write transaction (see
        ``BatchLeases``)."""
        taken: list[Lease] = await self._call(
            self._writer, self._in_txn, self._take_free, list(streams), owner, ttl
        )
        return taken

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease, or None."""
        lease: Lease | None = await self._call(self._reader, self._on_reader, self._get, stream)
        return lease

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease."""
        found: dict[str, Lease] = await self._call(self._reader, self._on_reader, self._every)
        return found

    def _in_txn(self, fn: Callable[..., T], *args: Any) -> T:
        with self._transaction() as conn:
            return fn(conn, *args)

    def _on_reader(self, fn: Callable[..., T], *args: Any) -> T:
        if self._rconn is None:
            raise self._not_open()
        return fn(self._rconn, *args)

    # -- on a connection's own thread --------------------------------------------------------

    @staticmethod
    def _get(conn: sqlite3.Connection, stream: str) -> Lease | None:
        """The stream's lease, or None."""
        row = conn.execute(_GET, (stream,)).fetchone()
        if row is None:
            return None
        return Lease(row[0], row[1], int(row[2]), float(row[3]), bool(row[4]))

    @staticmethod
    def _every(conn: sqlite3.Connection) -> dict[str, Lease]:
        """Every lease, by stream."""
        rows = conn.execute("SELECT stream, owner, epoch, expires_at, live FROM leases").fetchall()
        return {r[0]: Lease(r[0], r[1], int(r[2]), float(r[3]), bool(r[4])) for r in rows}

    @staticmethod
    def _current_epoch(conn: sqlite3.Connection, stream: str) -> int | None:
        """The epoch in force for ``stream`` (None when no lease was ever taken); ``append``
        checks it inside its own transaction."""
        row = conn.execute("SELECT epoch FROM leases WHERE stream = ?", (stream,)).fetchone()
        return None if row is None else int(row[0])

    def _take(
        self, conn: sqlite3.Connection, stream: str, owner: str, ttl: float, force: bool
    ) -> Lease | None:
        """Take the lease with the next epoch; unless ``force``, only when free or expired."""
        now = time.time()
        old = self._get(conn, stream)
        if not force and old is not None and old.expires_at > now:
            return None
        epoch = (old.epoch if old else 0) + 1
        conn.execute(_PUT, (stream, owner, epoch, now + ttl))
        return Lease(stream, owner, epoch, now + ttl, False)

    def _take_free(
        self, conn: sqlite3.Connection, streams: list[str], owner: str, ttl: float
    ) -> list[Lease]:
        taken = (self._take(conn, stream, owner, ttl, False) for stream in streams)
        return [lease for lease in taken if lease is not None]

    def _renew_all(
        self, conn: sqlite3.Connection, renewals: list[tuple[Lease, bool]], ttl: float
    ) -> list[Lease]:
        return [self._renew(conn, lease, ttl, live) for lease, live in renewals]

    def _renew(self, conn: sqlite3.Connection, lease: Lease, ttl: float, live: bool) -> Lease:
        """Extend ``lease`` if still current; return whatever lease is current. One statement
        when it is (the common case: a worker renews thousands per round)."""
        expires = time.time() + ttl
        row = conn.execute(_RENEW, (expires, int(live), lease.stream, lease.epoch)).fetchone()
        if row is not None:
            return Lease(lease.stream, row[0], lease.epoch, expires, bool(row[1]))
        return self._get(conn, lease.stream) or lease
