"""SQLiteStore specifics against real files (the shared contract is in tests/contract/):
duplicates, atomicity, two processes on one file, threads, WAL, SIGKILL, URLs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

import longline
from longline.core.model import AppendResult, Event, Quarantined, StoredEvent, Totals
from longline.stores import StoreError, open_store
from longline.stores.sqlite.store import SQLiteStore
from longline.testing.conformance.stores import CRASH_WRITER  # the contract's writer, any URL


def ev(key: str, cursor: str | None = None, payload: str | None = None, at: float = 1.5) -> Event:
    return Event(key=key, payload=payload or f'{{"k":"{key}"}}', cursor=cursor, received_at=at)


def keys_of(events: list[StoredEvent]) -> list[str]:
    return [e.key for e in events]


async def read_all(store: SQLiteStore, stream: str) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    while batch := await store.read(stream, after_seq=out[-1].seq if out else 0, limit=997):
        out.extend(batch)
    return out


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "events.db")
    await s.open()
    yield s
    await s.close()


# -- append contract -----------------------------------------------------------------------


async def test_duplicates_within_and_across_batches(store: SQLiteStore) -> None:
    batch = [ev("a", payload="first"), ev("b"), ev("a", payload="again"), ev("c"), ev("b")]
    assert await store.append("s", batch) == AppendResult(new=3, duplicates=2, last_seq=3)
    assert await store.append("s", [ev("b"), ev("d"), ev("a")]) == AppendResult(1, 2, 4)
    assert await store.append("s", [ev("d"), ev("c")]) == AppendResult(0, 2, 4)
    assert await store.append("s", []) == AppendResult(0, 0, 4)
    stored = await store.read("s")
    assert [(e.seq, e.key) for e in stored] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert stored[0].payload == "first"
    assert await store.last_seq("s") == 4


# -- atomicity and concurrency ---------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 1000, 2 * 1024 + 300])
@pytest.mark.parametrize("shape", ["cursor is key", "no cursors", "mixed cursors", "typed"])
async def test_every_column_is_stored_as_given(store: SQLiteStore, n: int, shape: str) -> None:
    """Rows are bound column-wise in chunks (stream and seq once per statement, a cursor equal
    to the key and NULL columns not bound at all): each shape and chunking stores exactly what
    was given, on the fast path and, after a duplicate, on the careful one."""

    def make(i: int) -> Event:
        key = f"k{i}"
        cursor = {
            "cursor is key": key,
            "no cursors": None,
            "mixed cursors": None if i % 3 else f"c{i}",
            "typed": f"c{i}",
        }[shape]
        event = (None if i % 2 else f"t{i}") if shape == "typed" else None
        return Event(key, f'{{"i":{i},"s":"\u00e9"}}', cursor, 1000.0 + i / 8, event)

    first = [make(i) for i in range(n)]
    assert await store.append("s", first) == AppendResult(n, 0, n)
    # Overlapping the first batch: the careful path stores only the new half.
    second = [make(i) for i in range(n // 2, n + n // 2 + 1)]
    assert await store.append("s", second) == AppendResult(n // 2 + 1, n - n // 2, n + n // 2 + 1)
    stored = await read_all(store, "s")
    expected = first + second[n - n // 2 :]
    assert [(e.seq, e.key, e.cursor, e.received_at, e.event, e.payload) for e in stored] == [
        (seq, e.key, e.cursor, e.received_at, e.event, e.payload)
        for seq, e in enumerate(expected, 1)
    ]
    cursors = [e.cursor for e in expected if e.cursor is not None]
    assert await store.checkpoint("s") == (cursors[-1] if cursors else None)


async def test_failed_insert_leaves_neither_events_nor_checkpoint(store: SQLiteStore) -> None:
    await store.append("s", [ev("a", "c-a")])
    bad = Event("z", cast(str, None), "c-z", 1.0)  # payload is NOT NULL: fails after b, c
    with pytest.raises(StoreError, match="append failed"):
        await store.append("s", [ev("b", "c-b"), ev("c", "c-c"), bad], checkpoint="x")
    assert keys_of(await store.read("s")) == ["a"]
    assert await store.checkpoint("s") == "c-a"
    assert await store.append("s", [ev("b", "c-b")]) == AppendResult(1, 0, 2)


async def test_failed_checkpoint_rolls_back_the_inserted_events(store: SQLiteStore) -> None:
    await store.append("s", [ev("a", "c-a")])
    with pytest.raises(StoreError):
        await store.append("s", [ev("b"), ev("c")], checkpoint=cast(str, object()))
    assert keys_of(await store.read("s")) == ["a"]
    assert await store.checkpoint("s") == "c-a"
    assert await store.last_seq("s") == 1


async def test_two_instances_sharing_a_file_never_double_or_gap(tmp_path: Path) -> None:
    a, b = SQLiteStore(tmp_path / "shared.db"), SQLiteStore(tmp_path / "shared.db")
    await asyncio.gather(a.open(), b.open())
    keys = [f"k{i}" for i in range(600)]
    rng = random.Random(7)
    shuffled = [rng.sample(keys, len(keys)) for _ in range(2)]

    async def feed(store: SQLiteStore, order: list[str], size: int) -> list[AppendResult]:
        return [
            await store.append("s", [ev(k, cursor=k) for k in order[i : i + size]])
            for i in range(0, len(order), size)
        ]

    try:
        runs = await asyncio.gather(
            feed(a, keys, 10),
            feed(b, keys[::-1], 7),
            feed(a, shuffled[0], 13),
            feed(b, shuffled[1], 11),
        )
        results = [r for run in runs for r in run]
        assert sum(r.new for r in results) == 600
        assert sum(r.duplicates for r in results) == 3 * 600
        stored = await read_all(a, "s")
        assert [e.seq for e in stored] == list(range(1, 601))
        assert sorted(keys_of(stored)) == sorted(keys)
        assert await b.last_seq("s") == 600
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_large_append_does_not_block_the_event_loop(store: SQLiteStore) -> None:
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    result = await store.append("s", [ev(f"k{i}", payload="x" * 200) for i in range(60_000)])
    during = ticks - before
    done = True
    await task
    assert result == AppendResult(60_000, 0, 60_000)
    assert during >= 5  # a blocked loop would tick at most once


async def test_reads_do_not_wait_behind_the_writer_thread(store: SQLiteStore) -> None:
    await store.append("s", [ev("a")])
    release = threading.Event()
    writer = store._writer
    assert writer is not None
    busy = writer.submit(release.wait, 10)  # occupy the writer thread
    try:
        pending = asyncio.create_task(store.append("s", [ev("b")]))
        assert keys_of(await asyncio.wait_for(store.read("s"), 5)) == ["a"]
        assert not pending.done()
    finally:
        release.set()
    assert busy.result() is True
    assert await pending == AppendResult(1, 0, 2)


# -- crash safety ----------------------------------------------------------------------------


def stored_rows(db: Path) -> tuple[list[tuple[int, str]], str | None]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, key FROM events WHERE stream='crash' ORDER BY seq")
        events = [(int(seq), str(key)) for seq, key in rows.fetchall()]
        cp = conn.execute("SELECT cursor FROM checkpoints WHERE stream='crash'").fetchall()
    conn.close()
    return events, cp[0][0] if cp else None


def test_sigkill_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    db, total = tmp_path / "crash.db", 60_000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(longline.__file__).parents[1])])}
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)  # printed by failing asserts below
    printed: list[int] = []
    killed = 0
    for round_ in range(40):
        cmd = [sys.executable, str(CRASH_WRITER), f"sqlite:///{db}", str(total), "20", "120"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        if round_ < 6:
            threading.Event().wait(rng.uniform(0.0, 0.1))
            proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        lines = out.split("\n")[:-1]  # a line cut by the kill has no newline: not committed
        killed += proc.returncode == -signal.SIGKILL
        printed += [int(line) for line in lines if line != "done"]
        events, cp = stored_rows(db)
        last = len(events)
        assert events == [(i, f"k{i}") for i in range(1, last + 1)], seed
        assert cp == (f"k{last}" if last else None), seed
        assert all(seq <= last for seq in printed), seed  # all reported commits survived
        if lines[-1:] == ["done"]:
            break
    assert killed >= 3, seed
    assert last == total
    assert printed[-1] == total


# -- lifecycle and factory -------------------------------------------------------------------


async def test_open_close_are_idempotent_and_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "life.db"
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="not open"):
        await store.read("s")
    await store.open()
    await store.open()
    await store.append("s", [ev("a", "c")])
    await store.close()
    await store.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with pytest.raises(StoreError, match="not open"):
        await store.append("s", [ev("b")])
    await store.open()
    assert keys_of(await store.read("s")) == ["a"]
    assert await store.checkpoint("s") == "c"
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    conn.close()


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 4")
    conn.close()
    with pytest.raises(StoreError, match="schema version 4"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.read("s")


async def test_checkpointer_restarts_a_wal_that_outgrew_its_limit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "wal.db", checkpoint_interval=3600, wal_limit=1 << 40)
    await store.open()
    try:
        for n in range(20):
            await store.append("s", [ev(f"k{n}-{i}", payload="x" * 500) for i in range(200)])
        conn = sqlite3.connect(store.path, isolation_level=None)
        store._checkpoint_once(conn, limit_frames=10)  # what the thread does past the limit
        await store.append("s", [ev("after")])  # the next write restarts the WAL
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
        conn.close()
        assert (busy, copied) == (0, frames)
        assert frames < 10
        assert len(await read_all(store, "s")) == 4001
    finally:
        await store.close()


def test_open_store_maps_sqlite_urls(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a.db")  # absolute: four slashes in total
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.synchronous) == (tmp_path / "a.db", "NORMAL")
    full = cast(SQLiteStore, open_store("sqlite:///data/x%20y.db?synchronous=full"))
    assert (full.path, full.synchronous) == (Path("data/x y.db"), "FULL")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secret@h/db", "unsupported store URL scheme 'mysql'"),
        ("events.db", "unsupported store URL scheme"),
        ("sqlite://host/x.db", "looks like sqlite:///"),
        ("sqlite:///x.db?journal=off", "unknown SQLite store option"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///:memory:", "needs a file path"),
    ],
)
def test_open_store_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    assert "secret" not in str(info.value)


def test_constructor_validates_synchronous() -> None:
    with pytest.raises(StoreError):
        SQLiteStore("x.db", synchronous="fast")
    extra: dict[str, Any] = {"synchronous": "extra"}
    assert SQLiteStore("x.db", **extra).synchronous == "EXTRA"


async def test_a_version_1_store_gets_totals_from_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    await store.append("a", [ev("1"), ev("2"), ev("2")])
    await store.quarantine("a", [Quarantined("x", b"y", 1.0)])
    await store.quarantine("b", [Quarantined("x", b"y", 1.0)] * 2)
    await store.close()
    with sqlite3.connect(path) as conn:  # as longline before totals left it
        conn.execute("DROP TABLE totals")
        conn.execute("UPDATE schema_version SET version = 1")
    conn.close()
    await store.open()
    try:
        assert await store.totals() == {"a": Totals(2, 0, 1, 0), "b": Totals(quarantined=2)}
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    conn.close()


async def test_a_version_2_store_gets_the_event_epoch_column(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:  # the events table as longline before epochs made it
        conn.execute(
            "CREATE TABLE events (stream TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL,"
            " cursor TEXT, received_at REAL NOT NULL, event TEXT, payload TEXT NOT NULL,"
            " PRIMARY KEY (stream, seq)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO events VALUES ('s', 1, 'a', NULL, 1.0, NULL, '{}')")
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (2)")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.append("s", [ev("b")], epoch=7)
        assert [(e.key, e.epoch) for e in await store.read("s")] == [("a", None), ("b", 7)]
    finally:
        await store.close()


async def test_reading_commands_never_create_a_store(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    store = open_store(f"sqlite:///{path}", create=False)
    with pytest.raises(StoreError, match=r"no SQLite store at .*typo\.db"):
        await store.open()
    assert not path.exists()
