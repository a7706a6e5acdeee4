"""PostgreSQL store (asyncpg): for servers and for several workers sharing one database.

Why it is shaped this way:
- ``append`` COPYs the batch into a per-connection temp table *before* taking any lock, then
  locks the stream's row in ``streams`` (``SELECT ... FOR UPDATE``) and runs one
  ``INSERT ... SELECT`` that drops known keys (an index probe per staged row) and numbers the
  rest ``last_seq + row_number()``. Concurrent appenders to one stream serialize on that row
  only for the insert itself, so seq stays gapless; other streams never wait. In the steady
  state (no repeated key in the batch, no duplicates in the stream's last append) the staged
  rows are inserted as they are, without the probe; a known key then fails the insert, the
  transaction rolls back and the append runs again the careful way.
- No ``ON CONFLICT DO NOTHING``: under the row lock a conflict cannot happen, and if something
  bypassed the lock, silently skipping a row would leave a seq gap. The unique ``(stream, key)``
  index makes such an insert fail (and roll back) instead; measured ~25% faster too.
- The checkpoint lives in the same ``streams`` row and is written in the same transaction.
- ``NOTIFY`` is transactional, so a dispatcher woken by ``LISTEN`` never sees a wake-up for
  events that did not commit; ``wait_for_events`` listens on a dedicated connection.
- The schema is versioned SQL under ``stores/migrations/postgres``, applied under an advisory
  lock so several processes starting at once migrate exactly once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from longline.core.keys import EventBatch
from longline.core.model import (
    AppendResult,
    Event,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)
from longline.stores import migrations
from longline.stores.base import BatchStatus, Store, StoreError, status_json
from longline.stores.postgres.delivery import PostgresDelivery
from longline.stores.postgres.leases import ADD_STREAM, LOCK_STREAM, PostgresLeases

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

IDLE_IN_TRANSACTION_MS = 10_000
_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # "cannot switch to state ...": a connection lost mid-call
    OSError,
    asyncio.TimeoutError,
)


# Refusals that retrying cannot fix until someone acts: privileges, credentials, a database,
# schema or table gone.
_PERMANENT = (
    asyncpg.InsufficientPrivilegeError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.UndefinedTableError,
)


class _OneLine(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reconnect to a server that is
    down or restarting ("Failed to restore the pool connection floor"); an outage must read as
    one line per event, so the exception is folded into the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OneLine())
_MIGRATE_LOCK = 0x6C6F6E67  # "long": pg_advisory_xact_lock key shared by every longline
_STAGING = "longline_staging"
# The tables a store has had since its first migration (a reading command checks for them).
_TABLES = ("longline_migrations", "streams", "events", "quarantine", "status")
_STAGING_COLUMNS = ("ord", "key", "cursor", "received_at", "event", "payload")
_CREATE_STAGING = f"""CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    ord int4 NOT NULL, key text NOT NULL, cursor text, received_at float8 NOT NULL,
    event text, payload text NOT NULL) ON COMMIT DELETE ROWS"""
# Known keys and repeats within the batch are dropped; the rest are numbered in batch order.
# The probe is a LATERAL subquery with LIMIT on purpose: that cannot be flattened, so it stays
# one index lookup per staged row. NOT EXISTS (or EXISTS in the select list) lets the planner
# pick a hash anti-join / hashed subplan that reads every stored key of the stream per append.
_INSERT = f"""
WITH fresh AS (
    SELECT DISTINCT ON (s.key) s.ord, s.key, s.cursor, s.received_at, s.event, s.payload
    FROM pg_temp.{_STAGING} s
    LEFT JOIN LATERAL (
        SELECT 1 AS hit FROM events e WHERE e.stream = $1 AND e.key = s.key LIMIT 1
    ) known ON true
    WHERE known.hit IS NULL
    ORDER BY s.key, s.ord
), ins AS (
    INSERT INTO events (stream, seq, key, cursor, received_at, event, payload, epoch)
    SELECT $1, $2::bigint + row_number() OVER (ORDER BY ord), key, cursor, received_at,
           event, payload, $3::bigint
    FROM fresh ORDER BY ord
    RETURNING seq, cursor
)
SELECT count(*) AS n, max(seq) AS last,
       (array_agg(cursor ORDER BY seq DESC) FILTER (WHERE cursor IS NOT NULL))[1] AS cursor
FROM ins"""
# The fast path: a batch of new keys, numbered by its order (a known key fails the insert).
_INSERT_ALL = f"""INSERT INTO events (stream, seq, key, cursor, received_at, event, payload, epoch)
SELECT $1, $2::bigint + ord + 1, key, cursor, received_at, event, payload, $3::bigint
FROM pg_temp.{_STAGING}"""


class _KnownKey(Exception):
    """The fast path met a key that is already stored: take the careful path."""


def _staging_records(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """The staging table's rows: zipped from an ``EventBatch``'s columns, so no ``Event``
    object is made per event (that cost more than the COPY's share in this process)."""
    if isinstance(events, EventBatch):
        return list(
            zip(
                range(len(events)),
                events.keys,
                events.cursors,
                events.received,
                events.types,
                events.payloads,
                strict=True,
            )
        )
    return [(i, e.key, e.cursor, e.received_at, e.event, e.payload) for i, e in enumerate(events)]


_READ = """SELECT seq, key, cursor, received_at, payload, event, epoch FROM events
    WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3"""


class PostgresStore(PostgresDelivery, PostgresLeases, Store, BatchStatus):
    """A :class:`~longline.stores.base.Store` in a PostgreSQL schema.

    The :class:`~longline.stores.base.EventLog` is here; the delivery log and the leases are
    in ``delivery.py`` and ``leases.py``, over the same pool.

    ``dsn`` is passed to asyncpg (``postgresql://user@host:port/db``, libpq query options such
    as ``sslmode`` included; the password may also come from ``PGPASSWORD`` or ``.pgpass``).
    """

    def __init__(
        self, dsn: str, *, schema: str = "public", pool_size: int = 8, create: bool = True
    ) -> None:
        if not schema or len(schema) > 40:
            raise StoreError("the PostgreSQL schema name must have 1 to 40 characters")
        if pool_size < 1:
            raise StoreError("pool_size must be >= 1")
        self._dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        # False for commands that only read: a mistyped ?schema= must not create an empty store.
        self.create = create
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._channel = f"longline_events:{schema}"
        self._dupes: set[str] = set()  # streams whose last append had duplicates (careful path)
        self._listener: asyncpg.Connection | None = None
        self._wake = asyncio.Event()

    @property
    def where(self) -> str:
        """``host:port/db`` of the DSN, for messages (never the user's password)."""
        parts = urlsplit(self._dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, then create or migrate the schema (idempotent, safe to race); with
        ``create=False``, refuse a schema that does not hold a longline store yet."""
        async with self._lock:
            if self._pool is not None:
                return
            try:
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    init=self._init_connection,
                    server_settings=self._settings(),
                )
            except _ERRORS as exc:
                raise self._error("connect to", exc) from exc
            try:
                async with pool.acquire() as conn:
                    if not self.create:
                        await self._require_store(conn)
                    await self._migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool

    async def close(self) -> None:
        """Close the listener and the pool. Safe to call twice."""
        async with self._lock:
            listener, self._listener = self._listener, None
            pool, self._pool = self._pool, None
            try:
                if listener is not None and not listener.is_closed():
                    await listener.close()
                if pool is not None:
                    await pool.close()
            except _ERRORS as exc:
                raise self._error("close", exc) from exc

    def _settings(self) -> dict[str, str]:
        # A transaction left open by a frozen process (SIGSTOP, a VM paused) would hold its
        # stream's row lock until it resumes: the server ends it after this idle time instead.
        return {
            "search_path": _ident(self.schema),
            "application_name": "longline",
            "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
        }

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await conn.execute(_CREATE_STAGING)

    async def _require_store(self, conn: asyncpg.Connection) -> None:
        """Raise unless the schema exists with longline's tables (an existing store may still
        be migrated: that changes no data and the reading code needs it)."""
        try:
            row = await conn.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,"
                " array(SELECT relname::text FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')"
                " AND relname = ANY($2::text[])) AS tables",
                self.schema,
                list(_TABLES),
            )
        except _ERRORS as exc:
            raise self._error("read the schema of", exc) from exc
        where = f"PostgreSQL schema {self.schema!r} at {self.where}"
        if not row["schema"]:
            raise StoreError(f"no {where} (`longline run` creates it)", permanent=True)
        missing = sorted(set(_TABLES) - set(row["tables"]))
        if missing:
            raise StoreError(
                f"no longline store in {where}: table(s) {', '.join(missing)} missing"
                " (`longline run` creates them)",
                permanent=True,
            )

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        steps = migrations.load("postgres")
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
                exists = await conn.fetchval(
                    "SELECT 1 FROM pg_namespace WHERE nspname = $1", self.schema
                )
                if not exists:
                    await conn.execute(f"CREATE SCHEMA {_ident(self.schema)}")
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS longline_migrations (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = await conn.fetchval("SELECT max(version) FROM longline_migrations") or 0
                if done > len(steps):
                    raise StoreError(
                        f"PostgreSQL schema {self.schema!r} is at version {done}; this longline"
                        f" knows up to {len(steps)}"
                    )
                for step in steps[done:]:
                    await conn.execute(step.sql)
                    await conn.execute(
                        "INSERT INTO longline_migrations (version, name) VALUES ($1, $2)",
                        step.version,
                        step.name,
                    )
                    log.info(
                        "PostgreSQL schema %s migrated to version %d", self.schema, step.version
                    )
        except _ERRORS as exc:
            raise self._error("migrate", exc) from exc

    async def schema_version(self) -> int:
        """The migration version the schema is at."""
        async with self._conn("read the schema version of") as conn:
            return int(await conn.fetchval("SELECT max(version) FROM longline_migrations"))

    # -- append ----------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Insert new events and save the checkpoint in one transaction (see ``EventLog``).

        Fast path (the steady state, as in the SQLite store): when no key repeats within the
        batch and the stream's last append had no duplicates, the staged rows are inserted as
        they are, numbered by their place in the batch, without probing for known keys; a
        unique violation rolls the whole transaction back and the append is done again the
        careful way. Measured in docs/benchmarks.md.
        """
        records = _staging_records(events)
        keys = {r[1] for r in records}
        if records and stream not in self._dupes and len(keys) == len(records):
            try:
                return await self._append(stream, records, checkpoint, epoch, reconnects, True)
            except _KnownKey:
                self._dupes.add(stream)
        result = await self._append(stream, records, checkpoint, epoch, reconnects, False)
        if result.duplicates:
            self._dupes.add(stream)
        else:
            self._dupes.discard(stream)
        return result

    async def _append(
        self,
        stream: str,
        records: list[tuple[Any, ...]],
        checkpoint: str | None,
        epoch: int | None,
        reconnects: int,
        fast: bool,
    ) -> AppendResult:
        now = time.time()
        async with self._conn("append to") as conn, conn.transaction():
            if records:
                await conn.copy_records_to_table(
                    _STAGING, records=records, columns=_STAGING_COLUMNS
                )
            await conn.execute(ADD_STREAM, stream, now)
            base = int(await conn.fetchval(LOCK_STREAM, stream))
            fenced = False
            if epoch is not None:
                current = await conn.fetchval("SELECT epoch FROM leases WHERE stream = $1", stream)
                fenced = current is not None and current > epoch
            n, last, cursor = 0, base, None
            if records and fast:
                try:
                    await conn.execute(_INSERT_ALL, stream, base, epoch)
                except asyncpg.UniqueViolationError:
                    raise _KnownKey from None  # rolls the transaction back
                n = len(records)
                cursor = next((r[2] for r in reversed(records) if r[2] is not None), None)
                last = base + n
            elif records:
                row = await conn.fetchrow(_INSERT, stream, base, epoch)
                n, cursor = int(row["n"]), row["cursor"]
                last = base + n
            saved = None if fenced else checkpoint if checkpoint is not None else cursor
            if n or saved is not None or records or reconnects:
                await conn.execute(
                    "UPDATE streams SET last_seq = $2, cursor = COALESCE($3, cursor),"
                    " updated_at = $4, events = events + $5, duplicates = duplicates + $6,"
                    " reconnects = reconnects + $7 WHERE stream = $1",
                    stream,
                    last,
                    saved,
                    now,
                    n,
                    len(records) - n,
                    reconnects,
                )
            if n:
                await conn.execute("SELECT pg_notify($1, $2)", self._channel, stream)
        return AppendResult(new=n, duplicates=len(records) - n, last_seq=last, fenced=fenced)

    # -- reads and the rest of the protocol ------------------------------------------------

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        async with self._conn("read the checkpoint from") as conn:
            value: str | None = await conn.fetchval(
                "SELECT cursor FROM streams WHERE stream = $1", stream
            )
            return value

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
        if limit <= 0:
            return []
        async with self._conn("read from") as conn:
            rows = await conn.fetch(_READ, stream, after_seq, limit)
        return [StoredEvent(*row) for row in rows]

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events, with their reasons."""
        rows = [(stream, i.reason, bytes(i.raw), i.received_at) for i in items]
        if not rows:
            return
        async with self._conn("quarantine in") as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO quarantine (stream, reason, raw, received_at) VALUES ($1, $2, $3, $4)",
                rows,
            )
            await conn.execute(ADD_STREAM, stream, time.time())
            await conn.execute(
                "UPDATE streams SET quarantined = quarantined + $2 WHERE stream = $1",
                stream,
                len(rows),
            )

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        if limit <= 0:
            return []
        async with self._conn("read quarantine from") as conn:
            rows = await conn.fetch(
                "SELECT id, reason, raw, received_at FROM quarantine"
                " WHERE stream = $1 AND id > $2 ORDER BY id LIMIT $3",
                stream,
                after_id,
                limit,
            )
        return [StoredQuarantine(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream (what ``longline status`` shows)."""
        await self.put_statuses({stream: status})

    async def put_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        """Save the statuses of many streams in one transaction, pipelined (``BatchStatus``)."""
        if not statuses:
            return
        now = time.time()
        rows = [(stream, status_json(stream, st), now) for stream, st in statuses.items()]
        async with self._conn("save status in") as conn, conn.transaction():
            await conn.executemany(_PUT_STATUS, rows)

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream."""
        async with self._conn("read status from") as conn:
            rows = await conn.fetch("SELECT stream, data::text FROM status ORDER BY stream")
        return {r[0]: json.loads(r[1]) for r in rows}

    async def totals(self) -> dict[str, Totals]:
        """The life-long counters of every stream that has any."""
        async with self._conn("read totals from") as conn:
            rows = await conn.fetch(
                "SELECT stream, events, duplicates, quarantined, reconnects FROM streams"
            )
        return {r[0]: Totals(r[1], r[2], r[3], r[4]) for r in rows}

    async def last_seq(self, stream: str) -> int:
        """The highest ``seq`` of ``stream``, 0 when it has no events."""
        async with self._conn("read from") as conn:
            value = await conn.fetchval("SELECT last_seq FROM streams WHERE stream = $1", stream)
        return int(value or 0)

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Stored events of ``stream`` with the given seqs, in seq order."""
        if not seqs:
            return []
        async with self._conn("read from") as conn:
            rows = await conn.fetch(
                "SELECT seq, key, cursor, received_at, payload, event, epoch FROM events"
                " WHERE stream = $1 AND seq = ANY($2::bigint[]) ORDER BY seq",
                stream,
                list(seqs),
            )
        return [StoredEvent(*row) for row in rows]

    # -- notifications -------------------------------------------------------------------

    async def wait_for_events(self, timeout: float) -> None:
        """Return as soon as an append commits (``LISTEN``), or after ``timeout`` seconds.

        The first call (and the first after the listening connection was lost) returns at once:
        events appended before we listened would otherwise be missed until the next append.
        """
        if self._listener is None or self._listener.is_closed():
            await self._listen()
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return
        finally:
            self._wake.clear()

    async def _listen(self) -> None:
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {self.where} is not open")
        try:
            conn = await asyncpg.connect(self._dsn, server_settings=self._settings())
            await conn.add_listener(self._channel, self._notified)
        except _ERRORS as exc:
            raise self._error("listen on", exc) from exc
        self._listener = conn

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    # -- plumbing ------------------------------------------------------------------------

    @asynccontextmanager
    async def _conn(self, doing: str) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; asyncpg and socket errors become :class:`StoreError`."""
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {self.where} is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _ERRORS as exc:
            raise self._error(doing, exc) from exc

    def _error(self, doing: str, exc: BaseException) -> StoreError:
        kind = type(exc).__name__
        return StoreError(
            f"PostgreSQL: could not {doing} {self.where}: {kind}: {exc}",
            permanent=isinstance(exc, _PERMANENT),
        )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_PUT_STATUS = (
    "INSERT INTO status (stream, data, updated_at) VALUES ($1, $2::jsonb, $3)"
    " ON CONFLICT (stream) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"
)


def from_url(url: str, *, create: bool = True) -> PostgresStore:
    """Build a store from ``postgresql://user@host:port/db?schema=NAME&pool_size=N``.

    ``schema`` and ``pool_size`` are longline's own options; every other query option is left
    for asyncpg/libpq (``sslmode``, ``connect_timeout``, ...). ``create=False``: ``open``
    refuses a schema without a longline store instead of creating it.
    """
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in options if k in ("schema", "pool_size")}
    rest = [(k, v) for k, v in options if k not in ours]
    try:
        pool_size = int(ours.get("pool_size", "8"))
    except ValueError as exc:
        raise StoreError("pool_size in the PostgreSQL URL must be an integer") from exc
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    schema = ours.get("schema", "public")
    return PostgresStore(dsn, schema=schema, pool_size=pool_size, create=create)
