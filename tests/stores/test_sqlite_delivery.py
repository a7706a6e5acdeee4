"""SQLite delivery cursors and dead letters, on real files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from longline.core.model import DeadLetter, StoredEvent
from longline.stores import SQLiteStore
from longline.stores.base import StoreError
from tests.processors.helpers import filled_store


async def test_cursor_starts_at_zero_and_never_moves_backwards(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "d.db", 10)
    try:
        assert await store.delivery_cursor("p", "s") == 0
        await store.ack("p", "s", 5)
        await store.ack("p", "s", 3)  # a late or repeated ack
        assert await store.delivery_cursor("p", "s") == 5
        await store.ack("p", "s", 9)
        assert await store.delivery_cursor("p", "s") == 9
        assert await store.delivery_cursor("q", "s") == 0  # per processor
        assert await store.delivery_cursor("p", "other") == 0  # per stream
    finally:
        await store.close()


async def test_dead_letters_commit_with_the_ack(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "d.db", 10)
    try:
        evs = await store.read("s", 0, 10)
        await store.ack("p", "s", 4, [(evs[2], "HTTP 400", 1), (evs[3], "HTTP 400", 1)])
        await store.ack("q", "s", 10, [(evs[9], "boom", 8)])
        got = await store.dead_letters()
        assert [(d.id, d.processor, d.stream, d.seq, d.key, d.error, d.attempts) for d in got] == [
            (1, "p", "s", 3, "k3", "HTTP 400", 1),
            (2, "p", "s", 4, "k4", "HTTP 400", 1),
            (3, "q", "s", 10, "k10", "boom", 8),
        ]
        assert all(isinstance(d, DeadLetter) and d.failed_at > 0 for d in got)
        assert [d.seq for d in await store.dead_letters("q")] == [10]
        assert [d.seq for d in await store.dead_letters("p", after_id=1)] == [4]
        assert [d.seq for d in await store.dead_letters(limit=1)] == [3]
        assert await store.delivery_cursor("p", "s") == 4
    finally:
        await store.close()


async def test_failing_again_updates_the_dead_letter_in_place(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "d.db", 3)
    try:
        (ev,) = await store.read_keys("s", [2])
        await store.ack("p", "s", 3, [(ev, "first", 8)])
        await store.ack("p", "s", 0, [(ev, "second", 1)])  # a --retry that failed
        (d,) = await store.dead_letters("p")
        assert (d.id, d.seq, d.error, d.attempts) == (1, 2, "second", 9)
        assert await store.delivery_cursor("p", "s") == 3
    finally:
        await store.close()


async def test_ack_rolls_back_whole_when_a_dead_letter_fails(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "d.db", 3)
    try:
        good, bad = await store.read("s", 0, 2)
        broken = StoredEvent(bad.seq, None, None, 0.0, "")  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="NOT NULL"):
            await store.ack("p", "s", 3, [(good, "x", 1), (broken, "x", 1)])
        assert await store.delivery_cursor("p", "s") == 0
        assert await store.dead_letters() == []
    finally:
        await store.close()


async def test_drop_and_read_keys(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "d.db", 1200)
    try:
        seqs = [1200, 7, 600, 7, 3]
        assert [e.seq for e in await store.read_keys("s", seqs)] == [3, 7, 600, 1200]
        assert [e.key for e in await store.read_keys("s", range(1, 1201))] == [
            f"k{i}" for i in range(1, 1201)
        ]
        assert await store.read_keys("s", [5000]) == []
        assert await store.read_keys("other", [1]) == []
        evs = await store.read_keys("s", [1, 2, 3])
        await store.ack("p", "s", 3, [(e, "x", 1) for e in evs])
        await store.drop_dead_letters([1, 3])
        await store.drop_dead_letters([])
        assert [d.seq for d in await store.dead_letters()] == [2]
    finally:
        await store.close()


async def test_tables_survive_reopen_and_old_files_get_them(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 2)
    await store.ack("p", "s", 2, [(e, "x", 1) for e in await store.read("s", 0, 1)])
    await store.close()
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE delivery_cursors")  # a file written before processors existed
    conn.commit()
    conn.close()
    store = SQLiteStore(db)
    await store.open()
    await store.open()  # idempotent
    try:
        assert await store.delivery_cursor("p", "s") == 0
        assert [d.seq for d in await store.dead_letters()] == [1]
        await store.wait_for_events(0.01)
    finally:
        await store.close()
