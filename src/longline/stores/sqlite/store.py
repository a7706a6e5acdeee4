"""SQLite store: the default backend, one file, WAL mode, commits off the event loop.

Why it is shaped this way (measured: docs/benchmarks.md and docs/stores.md):
- One writer thread owns the write connection, so the event loop never blocks on a commit and
  SQLite sees one writer per process; ``read`` and friends use a second connection on their own
  thread so they never queue behind a write batch (WAL lets readers run during a write).
- Automatic WAL checkpoints stall commits for tens of ms, so the writer turns them off and a
  background thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection instead.
- ``synchronous=NORMAL`` (the default) survives a process crash or SIGKILL; only power loss or an
  OS crash can drop the last commits. Use ``synchronous="FULL"`` (``?synchronous=FULL`` in the
  URL) when that matters more than throughput.
- Events are clustered by ``(stream, seq)`` with a unique ``(stream, key)`` index: appends write
  at the end of the table and ``read`` scans in order. With random keys this measured ~2.5x
  faster appends and ~6x faster reads than clustering by key.
- ``append`` runs inside ``BEGIN IMMEDIATE``, so several processes sharing the file stay correct.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from longline.core.keys import EventBatch
from longline.core.model import (
    AppendResult,
    Event,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)
from longline.stores.base import BatchStatus, Store, StoreError, status_json
from longline.stores.sqlite.delivery import DELIVERY_SCHEMA, SQLiteDelivery
from longline.stores.sqlite.leases import LEASES_SCHEMA, SQLiteLeases

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 3  # 2: the totals table; 3: events.epoch
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_BUSY_TIMEOUT_MS = 10_000
_MAX_CATCH_UP_PASSES = 8
_SMALL_TAIL_FRAMES = 256  # pages (1 MiB at 4 KiB) a pass under the write gate may copy
_KEY_CHUNK = 500  # keys per ``IN (...)`` lookup; far under SQLite's variable limit
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS events (
        stream TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, cursor TEXT,
        received_at REAL NOT NULL, event TEXT, payload TEXT NOT NULL, epoch INTEGER,
        PRIMARY KEY (stream, seq)) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_stream_key ON events (stream, key)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        stream TEXT PRIMARY KEY, cursor TEXT NOT NULL, seq INTEGER NOT NULL,
        updated_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, reason TEXT NOT NULL,
        raw BLOB NOT NULL, received_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS quarantine_stream_id ON quarantine (stream, id)",
    """CREATE TABLE IF NOT EXISTS status (
        stream TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL)""",
    *LEASES_SCHEMA,
)
# Life-long counters per stream, updated inside the transactions that write what they count.
_TOTALS_TABLE = """CREATE TABLE IF NOT EXISTS totals (
    stream TEXT PRIMARY KEY, events INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0, quarantined INTEGER NOT NULL DEFAULT 0,
    reconnects INTEGER NOT NULL DEFAULT 0)"""
# A store made before totals existed: what its rows tell (duplicates and reconnects were never
# recorded, so they start at 0).
_BACKFILL_TOTALS = """INSERT INTO totals (stream, events, quarantined)
    SELECT stream, SUM(e), SUM(q) FROM (
        SELECT stream, COUNT(*) AS e, 0 AS q FROM events GROUP BY stream
        UNION ALL SELECT stream, 0, COUNT(*) FROM quarantine GROUP BY stream)
    GROUP BY stream"""
_ADD_TOTALS = (
    "INSERT INTO totals (stream, events, duplicates, quarantined, reconnects)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE SET"
    " events = events + excluded.events, duplicates = duplicates + excluded.duplicates,"
    " quarantined = quarantined + excluded.quarantined,"
    " reconnects = reconnects + excluded.reconnects"
)
_UPSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (stream, cursor, seq, updated_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (stream) DO UPDATE SET cursor = excluded.cursor, seq = excluded.seq,"
    " updated_at = excluded.updated_at"
)

# Rows per multi-row INSERT: at most 5 parameters each (plus the stream, the first seq and the
# epoch, bound once per statement), under SQLite's variable limit (999 before 3.32, 32766 since).
_MAX_ROWS = 1024 if sqlite3.sqlite_version_info >= (3, 32, 0) else 128
# What the cursor column of a batch's rows is bound to.
_CURSOR_BOUND, _CURSOR_IS_KEY, _CURSOR_NULL = 0, 1, 2


@cache
def _insert_sql(rows: int, cursor: int, typed: bool) -> str:
    """``INSERT`` of ``rows`` events: ``?1`` is the stream, ``?2`` the first seq and ``?3`` the
    lease epoch of the append; then, row after row, the key, the cursor (unless it is the key or
    NULL), ``received_at``, the event type (unless every type is NULL) and the payload.

    The rows come from a ``VALUES`` list whose first column is the row's index (seq ``?2 + i``)
    and whose other parameters are plain ``?``: numbered ``?N`` parameters make preparing a
    statement quadratic in its rows (measured 52 ms for 1000 rows, against 2 ms like this).
    """
    cols = ["column2"]  # the key
    if cursor == _CURSOR_BOUND:
        cols.append(f"column{len(cols) + 2}")
        cur = cols[-1]
    else:
        cur = "column2" if cursor == _CURSOR_IS_KEY else "NULL"
    cols.append(f"column{len(cols) + 2}")
    received = cols[-1]
    event = "NULL"
    if typed:
        cols.append(f"column{len(cols) + 2}")
        event = cols[-1]
    cols.append(f"column{len(cols) + 2}")
    marks = ", ".join("?" * len(cols))
    values = ", ".join(f"({i}, {marks})" for i in range(rows))
    return (
        "INSERT INTO events (stream, seq, key, cursor, received_at, event, payload, epoch)"
        f" SELECT ?1, ?2 + column1, column2, {cur}, {received}, {event}, {cols[-1]}, ?3"
        f" FROM (VALUES {values})"
    )


def _insert_columns(
    conn: sqlite3.Connection,
    stream: str,
    first_seq: int,
    keys: list[str],
    cursors: list[str | None],
    received: list[float],
    types: list[str | None],
    payloads: list[str],
    epoch: int | None,
) -> None:
    """Insert events given column by column, numbered from ``first_seq``, with ``epoch``.

    Few statements (sizes are powers of two, so few distinct ones stay prepared), each binding
    only what differs per row: the stream and seq are bound once per statement, a cursor that
    is the key is not bound again, NULL columns not at all. ``executemany`` steps once per row
    and the sqlite3 module releases and retakes the GIL around every step; while the event loop
    holds the GIL each retake can wait for a switch interval (5 ms). Binding a parameter holds
    the GIL too, and ``None`` is the slowest to bind (the module looks for an adapter).
    Measured in docs/benchmarks.md.
    """
    n = len(keys)
    if cursors == keys:
        cursor = _CURSOR_IS_KEY
    elif cursors.count(None) == n:
        cursor = _CURSOR_NULL
    else:
        cursor = _CURSOR_BOUND
    typed = types.count(None) != n
    cols: list[list[Any]] = [keys]
    if cursor == _CURSOR_BOUND:
        cols.append(cursors)
    cols.append(received)
    if typed:
        cols.append(types)
    cols.append(payloads)
    width = len(cols)
    done = 0
    while done < n:
        left = n - done
        size = _MAX_ROWS if left >= _MAX_ROWS else 1 << (left.bit_length() - 1)
        params: list[Any] = [None] * (3 + width * size)
        params[0], params[1], params[2] = stream, first_seq + done, epoch
        for j, col in enumerate(cols):
            params[3 + j :: width] = col[done : done + size]
        conn.execute(_insert_sql(size, cursor, typed), params)
        done += size


def _enter_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL. Switching needs an exclusive lock and SQLite reports a concurrent opener
    as "locked" without calling the busy handler, so two processes creating the same file at
    once retry here (once the file is in WAL mode the pragma is a no-op)."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


_PUT_STATUS = (
    "INSERT INTO status (stream, data, updated_at) VALUES (?, ?, ?) ON CONFLICT (stream)"
    " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"
)


class SQLiteStore(SQLiteDelivery, SQLiteLeases, Store, BatchStatus):
    """A :class:`~longline.stores.base.Store` in one SQLite file (WAL mode).

    The :class:`~longline.stores.base.EventLog` is here; the delivery log and the leases are
    in ``delivery.py`` and ``leases.py``, on the same connections and threads.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        synchronous: str = "NORMAL",
        checkpoint_interval: float = 1.0,
        wal_limit: int = 64 * 1024 * 1024,
    ) -> None:
        sync = synchronous.upper()
        if sync not in _SYNCHRONOUS:
            raise StoreError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise StoreError("SQLiteStore needs a file path (WAL needs a real file)")
        self.path = Path(path)
        # False for commands that only read: a mistyped path must not create an empty store.
        self.create = create
        self.synchronous = sync
        self._interval = checkpoint_interval
        self._wal_limit = wal_limit
        self._wal_path = f"{self.path}-wal"
        self._lock = asyncio.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._ckpt_thread: threading.Thread | None = None
        self._ckpt_wake = threading.Event()
        self._gate = threading.Lock()  # held by every write transaction of this instance
        self._dupes: set[str] = set()  # streams whose last batch had duplicates (careful path)
        self._ckpt_stop = False

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open both connections, create the schema if missing, start the checkpointer."""
        async with self._lock:
            if self._writer is not None:
                return
            if not self.path.parent.is_dir():  # sqlite3 would only say "unable to open"
                raise StoreError(
                    f"SQLite store {self.path}: directory {self.path.parent} does not exist"
                )
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="longline-sqlite-writer")
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="longline-sqlite-reader")
            try:
                await self._call(self._writer, self._open_writer)
                await self._call(self._reader, self._open_reader)
            except BaseException:
                await self._shutdown()
                raise
            self._ckpt_stop = False
            self._ckpt_wake.clear()
            self._ckpt_thread = threading.Thread(
                target=self._checkpointer, name="longline-sqlite-checkpoint", daemon=True
            )
            self._ckpt_thread.start()

    async def close(self) -> None:
        """Stop the checkpointer, truncate the WAL, close connections and join threads."""
        async with self._lock:
            if self._writer is not None:
                await self._shutdown()

    async def _shutdown(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        loop = asyncio.get_running_loop()
        try:
            if reader is not None:
                await loop.run_in_executor(reader, self._close_reader)
            if writer is not None:
                # Queued behind any in-flight append, so those still commit first.
                await loop.run_in_executor(writer, self._close_writer)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite close failed: {exc}") from exc
        finally:
            for ex in (reader, writer):
                if ex is not None:
                    await asyncio.to_thread(ex.shutdown, True)

    # -- EventLog --------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Insert new events and save the checkpoint in one transaction (see ``EventLog``)."""
        return await self._call(
            self._writer, self._append, stream, events, checkpoint, epoch, reconnects
        )

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        rows = await self._query("SELECT cursor FROM checkpoints WHERE stream = ?", (stream,))
        return rows[0][0] if rows else None

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``."""
        if limit <= 0:
            return []
        rows = await self._query(
            "SELECT seq, key, cursor, received_at, payload, event, epoch FROM events"
            " WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            (stream, after_seq, limit),
        )
        return [StoredEvent(*row) for row in rows]

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Stored events of ``stream`` with the given seqs, in seq order."""
        wanted = sorted(set(seqs))
        out: list[StoredEvent] = []
        for i in range(0, len(wanted), _KEY_CHUNK):
            chunk = wanted[i : i + _KEY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self._query(
                "SELECT seq, key, cursor, received_at, payload, event, epoch FROM events"
                f" WHERE stream = ? AND seq IN ({marks}) ORDER BY seq",
                (stream, *chunk),
            )
            out.extend(StoredEvent(*row) for row in rows)
        return out

    async def wait_for_events(self, timeout: float) -> None:
        """SQLite has no notification channel across processes: the dispatcher polls."""
        await asyncio.sleep(timeout)

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events, with their reasons."""
        if items:
            await self._call(self._writer, self._quarantine, stream, items)

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        if limit <= 0:
            return []
        rows = await self._query(
            "SELECT id, reason, raw, received_at FROM quarantine"
            " WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
            (stream, after_id, limit),
        )
        return [StoredQuarantine(*row) for row in rows]

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream (what ``longline status`` shows)."""
        await self.put_statuses({stream: status})

    async def put_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        """Save the statuses of many streams in one write transaction (``BatchStatus``); none,
        no transaction."""
        if not statuses:
            return
        now = time.time()
        rows = [(stream, status_json(stream, st), now) for stream, st in statuses.items()]
        await self._call(self._writer, self._write_many, _PUT_STATUS, rows)

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream."""
        rows = await self._query("SELECT stream, data FROM status ORDER BY stream", ())
        return {stream: json.loads(data) for stream, data in rows}

    async def totals(self) -> dict[str, Totals]:
        """The life-long counters of every stream that has any."""
        rows = await self._query(
            "SELECT stream, events, duplicates, quarantined, reconnects FROM totals", ()
        )
        return {row[0]: Totals(*row[1:]) for row in rows}

    async def last_seq(self, stream: str) -> int:
        """The highest ``seq`` of ``stream``, 0 when it has no events."""
        rows = await self._query("SELECT MAX(seq) FROM events WHERE stream = ?", (stream,))
        return int(rows[0][0] or 0)

    # -- plumbing (runs on the owning threads) ---------------------------------------------

    async def _call(self, ex: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the thread that owns the connection; translate sqlite3 errors."""
        try:
            if ex is None:
                raise RuntimeError("no executor")
            future = asyncio.get_running_loop().run_in_executor(ex, fn, *args)
        except RuntimeError as exc:  # never opened, or closed while we were scheduling
            raise self._not_open() from exc
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {fn.__name__.strip('_')} failed: {exc}") from exc

    def _not_open(self) -> StoreError:
        return StoreError(f"SQLite store {self.path} is not open")

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._call(self._reader, self._select, sql, params)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    def _open_writer(self) -> None:
        if not self.create and not self.path.is_file():
            raise StoreError(f"no SQLite store at {self.path} (`longline run` creates it)")
        conn = self._connect()
        try:
            mode = _enter_wal(conn)
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite at {self.path} refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {self._wal_limit}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for ddl in (*_SCHEMA, *DELIVERY_SCHEMA):
                    conn.execute(ddl)
                found = conn.execute("SELECT MAX(version) FROM schema_version").fetchall()[0][0]
                if found is not None and found > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has schema version {found}; this longline knows "
                        f"up to {SCHEMA_VERSION}"
                    )
                conn.execute(_TOTALS_TABLE)
                if found is not None and found < 2:
                    conn.execute(_BACKFILL_TOTALS)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
                if "epoch" not in columns:  # a store made before version 3
                    conn.execute("ALTER TABLE events ADD COLUMN epoch INTEGER")
                if found != SCHEMA_VERSION:
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                conn.execute("COMMIT")
            except BaseException:
                conn.rollback()
                raise
        except BaseException:
            conn.close()
            raise
        self._wconn = conn

    def _open_reader(self) -> None:
        self._rconn = self._connect()
        self._rconn.execute("PRAGMA query_only = ON")

    def _close_reader(self) -> None:
        if self._rconn is not None:
            self._rconn.close()
            self._rconn = None

    def _close_writer(self) -> None:
        self._ckpt_stop = True
        self._ckpt_wake.set()
        if self._ckpt_thread is not None:
            self._ckpt_thread.join()
            self._ckpt_thread = None
        conn, self._wconn = self._wconn, None
        if conn is None:
            return
        try:
            # Leave a small file behind; give up quickly if another process holds it busy.
            conn.execute("PRAGMA busy_timeout = 1000")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        if self._rconn is None:
            raise self._not_open()
        return self._rconn.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``) on the writer connection.

        Holds the gate so the checkpointer can pause this process's writes for a moment.
        """
        conn = self._wconn
        if conn is None:
            raise self._not_open()
        with self._gate:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
        self._note_wal()

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._transaction() as conn:
            conn.executemany(sql, rows)

    def _quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO quarantine (stream, reason, raw, received_at) VALUES (?, ?, ?, ?)",
                [(stream, i.reason, bytes(i.raw), i.received_at) for i in items],
            )
            conn.execute(_ADD_TOTALS, (stream, 0, 0, len(items), 0))

    def _append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None,
        epoch: int | None,
        reconnects: int,
    ) -> AppendResult:
        fenced = False
        with self._transaction() as conn:
            if epoch is not None:
                current = self._current_epoch(conn, stream)
                fenced = current is not None and current > epoch
            last = conn.execute(
                "SELECT MAX(seq) FROM events WHERE stream = ?", (stream,)
            ).fetchall()[0][0]
            seq, new, cursor = self._insert(
                conn, stream, int(last or 0), events, checkpoint, epoch
            )
            if cursor is not None and not fenced:
                conn.execute(_UPSERT_CHECKPOINT, (stream, cursor, seq, time.time()))
            conn.execute(_ADD_TOTALS, (stream, new, len(events) - new, 0, reconnects))
        return AppendResult(new, len(events) - new, seq, fenced)

    def _insert(
        self,
        conn: sqlite3.Connection,
        stream: str,
        seq: int,
        events: Sequence[Event],
        checkpoint: str | None,
        epoch: int | None,
    ) -> tuple[int, int, str | None]:
        """Insert the events whose key is new after ``seq`` (stored with ``epoch``); return
        (last seq, new, cursor).

        Fast path (the steady state): no key repeats within the batch and the stream's last
        batch had no duplicates, so every row is inserted as it comes, columns bound straight
        from an ``EventBatch``; a UNIQUE violation deletes what it inserted and falls back to
        the careful path, which looks the keys up first. Measured: the lookup and a Python
        tuple per row cost as much as the inserts themselves.
        """
        if isinstance(events, EventBatch):
            keys, cursors, received = events.keys, events.cursors, events.received
            types, payloads = events.types, events.payloads
        else:
            keys, cursors = [ev.key for ev in events], [ev.cursor for ev in events]
            received = [ev.received_at for ev in events]
            types, payloads = [ev.event for ev in events], [ev.payload for ev in events]
        n = len(keys)
        if n and stream not in self._dupes and len(set(keys)) == n:
            try:
                _insert_columns(
                    conn, stream, seq + 1, keys, cursors, received, types, payloads, epoch
                )
            except sqlite3.IntegrityError:
                conn.execute("DELETE FROM events WHERE stream = ? AND seq > ?", (stream, seq))
                self._dupes.add(stream)
            else:
                cursor = checkpoint
                if cursor is None:
                    cursor = next((c for c in reversed(cursors) if c is not None), None)
                return seq + n, n, cursor
        seen = self._existing_keys(conn, stream, keys)
        kept: list[int] = []
        for i, key in enumerate(keys):
            if key not in seen:
                seen.add(key)
                kept.append(i)
        cursor = checkpoint
        if cursor is None:
            cursor = next((c for c in (cursors[i] for i in reversed(kept)) if c is not None), None)
        if kept:
            _insert_columns(
                conn,
                stream,
                seq + 1,
                [keys[i] for i in kept],
                [cursors[i] for i in kept],
                [received[i] for i in kept],
                [types[i] for i in kept],
                [payloads[i] for i in kept],
                epoch,
            )
        if len(kept) == n:
            self._dupes.discard(stream)
        else:
            self._dupes.add(stream)
        return seq + len(kept), len(kept), cursor

    @staticmethod
    def _existing_keys(conn: sqlite3.Connection, stream: str, all_keys: list[str]) -> set[str]:
        keys = list(dict.fromkeys(all_keys))
        found: set[str] = set()
        for i in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[i : i + _KEY_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key FROM events WHERE stream = ? AND key IN ({marks})"
            found.update(row[0] for row in conn.execute(sql, (stream, *chunk)).fetchall())
        return found

    def _note_wal(self) -> None:
        """Wake the checkpointer early when the WAL outgrows its limit."""
        try:
            if os.path.getsize(self._wal_path) > self._wal_limit:
                self._ckpt_wake.set()
        except OSError:
            pass

    def _checkpointer(self) -> None:
        """Checkpoint off the commit path: PASSIVE never waits for, nor blocks, the writer."""
        try:
            conn = self._connect()
            page = int(conn.execute("PRAGMA page_size").fetchall()[0][0])
        except sqlite3.Error:
            log.exception("SQLite checkpointer could not connect to %s", self.path)
            return
        try:
            while True:
                self._ckpt_wake.wait(self._interval)
                self._ckpt_wake.clear()
                if self._ckpt_stop:
                    return
                try:
                    self._checkpoint_once(conn, self._wal_limit // page)
                except sqlite3.Error as exc:
                    log.warning("SQLite checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def _checkpoint_once(self, conn: sqlite3.Connection, limit_frames: int) -> None:
        """Copy the WAL into the database; restart the WAL once it outgrows ``wal_limit``.

        Under sustained writes PASSIVE never quite catches up, so the WAL never restarts and
        grows without bound (measured: 1.3 GB for 300 k rows). When it is too big, PASSIVE
        repeats until a pass only had a small tail to copy, then one last pass runs with this
        instance's writes paused: the WAL is then fully copied and the writer's next transaction
        restarts it. That pause (measured 10-40 ms with random keys) comes once per
        ``wal_limit`` of WAL, where SQLite's automatic checkpoint stalls every 4 MB.
        """
        ckpt = "PRAGMA wal_checkpoint(PASSIVE)"
        _, frames, done = conn.execute(ckpt).fetchall()[0]
        for _ in range(_MAX_CATCH_UP_PASSES):
            if frames <= limit_frames or self._ckpt_stop:
                return
            before = done
            _, frames, done = conn.execute(ckpt).fetchall()[0]
            if frames - before <= _SMALL_TAIL_FRAMES:
                break
        with self._gate:
            conn.execute(ckpt).fetchall()
