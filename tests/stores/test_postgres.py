"""PostgresStore specifics: migrations, a connection killed mid-transaction, LISTEN/NOTIFY, URLs.

The shared promises (append, checkpoint, delivery, leases, SIGKILL) are in tests/contract/.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from longline.core.model import AppendResult, Event, Quarantined, Totals
from longline.stores import StoreError, open_store
from longline.stores.postgres.store import PostgresStore, from_url

asyncpg = pytest.importorskip("asyncpg")


def ev(key: str, cursor: str | None = None) -> Event:
    return Event(key=key, payload=f'{{"k":"{key}"}}', cursor=cursor, received_at=1.0)


def schema_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["schema"]


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    s = from_url(pg_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def admin(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_server)
    yield conn
    await conn.close()


async def test_migrations_are_versioned_idempotent_and_safe_to_race(
    pg_url: str,
    admin: asyncpg.Connection,
) -> None:
    stores = [from_url(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))  # three processes starting at once
    await stores[0].close()
    await stores[0].open()  # and again: nothing left to do
    rows = await admin.fetch(
        f"SELECT version, name FROM {schema_of(pg_url)}.longline_migrations ORDER BY version"
    )
    assert [tuple(r) for r in rows] == [
        (1, "initial"), (2, "leases"), (3, "totals"), (4, "event_epoch")
    ]
    assert await stores[1].schema_version() == 4
    for s in stores:
        await s.close()


async def test_a_newer_schema_is_refused(
    pg_url: str,
    admin: asyncpg.Connection,
) -> None:
    first = from_url(pg_url)
    await first.open()
    await first.close()
    await admin.execute(
        f"INSERT INTO {schema_of(pg_url)}.longline_migrations (version, name) VALUES (9, 'x')"
    )
    with pytest.raises(StoreError, match="is at version 9; this longline knows up to 4"):
        await from_url(pg_url).open()


async def test_connection_killed_mid_transaction_raises_and_a_retry_leaves_no_gap(
    store: PostgresStore,
    pg_url: str,
    admin: asyncpg.Connection,
) -> None:
    await store.append("s", [ev("a", "c-a")])
    blocker = await asyncpg.connect(urlsplit(pg_url)._replace(query="").geturl())
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute(f"SELECT 1 FROM {store.schema}.streams WHERE stream = 's' FOR UPDATE")
    append = asyncio.create_task(store.append("s", [ev("b", "c-b"), ev("c", "c-c")]))
    blocked: int | None = None
    for _ in range(200):  # the append has staged its rows and now waits for the stream lock
        blocked = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            blocker.get_server_pid(),
        )
        if blocked:
            break
        await asyncio.sleep(0.02)
    assert blocked is not None
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", blocked)
    with pytest.raises(StoreError, match="could not append to"):
        await append
    await tx.rollback()
    await blocker.close()
    assert [e.key for e in await store.read("s")] == ["a"]
    assert await store.checkpoint("s") == "c-a"
    retry = await store.append("s", [ev("b", "c-b"), ev("c", "c-c")])
    assert retry == AppendResult(new=2, duplicates=0, last_seq=3)
    assert [(e.seq, e.key) for e in await store.read("s")] == [(1, "a"), (2, "b"), (3, "c")]
    assert await store.checkpoint("s") == "c-c"


async def test_notify_wakes_a_waiting_dispatcher_at_once(store: PostgresStore, pg_url: str) -> None:
    await store.wait_for_events(30)  # first call: starts listening and returns at once
    waiter = asyncio.create_task(store.wait_for_events(60))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    other = from_url(pg_url)
    await other.open()
    await other.append("s", [ev("a")])  # another process's commit
    await asyncio.wait_for(waiter, 10)  # far less than its 60 s timeout
    await other.append("s", [ev("a")])  # nothing new: no notification
    assert await asyncio.wait_for(store.wait_for_events(0.1), 10) is None
    await other.close()


async def test_a_lost_listener_reconnects_and_returns_at_once(
    store: PostgresStore, admin: asyncpg.Connection
) -> None:
    await store.wait_for_events(1)
    assert store._listener is not None
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", store._listener.get_server_pid())
    for _ in range(100):
        if store._listener.is_closed():
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(store.wait_for_events(60), 10)  # re-listens, may have missed some
    waiter = asyncio.create_task(store.wait_for_events(60))
    await store.append("s", [ev("x")])
    await asyncio.wait_for(waiter, 10)


def test_url_options_are_ours_or_passed_to_asyncpg() -> None:
    s = from_url("postgresql://u@db.example:5433/events?schema=ll&pool_size=3&sslmode=disable")
    assert (s.schema, s.where) == ("ll", "db.example:5433/events")
    assert s._pool_size == 3
    assert s._dsn == "postgresql://u@db.example:5433/events?sslmode=disable"
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
    assert from_url("postgresql://u@h/db").schema == "public"
    with pytest.raises(StoreError, match="pool_size"):
        from_url("postgresql://u@h/db?pool_size=many")
    with pytest.raises(StoreError, match="schema name"):
        PostgresStore("postgresql://u@h/db", schema="")


async def test_create_false_opens_an_existing_store_and_refuses_a_missing_schema(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    schema = schema_of(pg_url)
    reader = from_url(pg_url, create=False)
    with pytest.raises(StoreError) as info:
        await reader.open()
    assert str(info.value) == (
        f"no PostgreSQL schema '{schema}' at 127.0.0.1:5432/test (`longline run` creates it)"
    )
    assert info.value.permanent
    assert await admin.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema) is None
    writer = from_url(pg_url)  # what `run` does: creates it
    await writer.open()
    await writer.append("a", [ev("1")])
    await writer.close()
    await reader.open()  # now there is a store to read
    try:
        assert [e.key for e in await reader.read("a")] == ["1"]
    finally:
        await reader.close()


async def test_unreachable_server_raises_store_error_without_the_password() -> None:
    s = open_store("postgresql://user:s3cr3t@127.0.0.1:1/db")
    with pytest.raises(StoreError, match=re.escape("could not connect to 127.0.0.1:1/db")) as info:
        await s.open()
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(StoreError, match="not open"):
        await s.read("s")
    await s.close()


async def test_migration_3_counts_totals_from_the_rows(
    pg_url: str,
    admin: asyncpg.Connection,
) -> None:
    store = from_url(pg_url)
    await store.open()
    await store.append("a", [ev("1"), ev("2"), ev("2")])
    await store.quarantine("a", [Quarantined("x", b"y", 1.0)])
    await store.quarantine("b", [Quarantined("x", b"y", 1.0)] * 2)
    await store.close()
    schema = schema_of(pg_url)
    await admin.execute(  # back to version 2, as longline before totals left it
        f"ALTER TABLE {schema}.streams DROP COLUMN events, DROP COLUMN duplicates,"
        f" DROP COLUMN quarantined, DROP COLUMN reconnects;"
        f" DELETE FROM {schema}.streams WHERE stream = 'b';"
        f" ALTER TABLE {schema}.events DROP COLUMN epoch;"
        f" DELETE FROM {schema}.longline_migrations WHERE version >= 3"
    )
    await store.open()
    try:
        assert await store.schema_version() == 4
        assert await store.totals() == {"a": Totals(2, 0, 1, 0), "b": Totals(quarantined=2)}
    finally:
        await store.close()


def test_the_pools_reconnect_failures_are_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncpg logs a traceback whenever it cannot restore its pool while the server restarts."""
    import logging

    import longline.stores.postgres.store  # noqa: F401  (installs the filter)

    try:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5999)")
    except ConnectionRefusedError:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying", exc_info=True
        )
    (record,) = caplog.records
    assert record.exc_info is None and not record.exc_text
    assert record.getMessage() == (
        "Failed to restore the pool connection floor; retrying (ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 5999))"
    )
    assert "Traceback" not in caplog.text
