"""Errors a user can act on reach them as one line and an exit code, never a traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from longline.stores.dynamodb.schema import TABLES
from longline.testing.provider import Provider

# Every command that opens the store, with the arguments it needs besides CONFIG.
STORE_COMMANDS: list[tuple[str, ...]] = [
    ("run", "--duration", "5"),
    ("init",),
    ("status",),
    ("status", "--json"),
    ("events", "--stream", "a"),
    ("deadletters",),
    ("dispatch", "--duration", "5"),
    ("replay", "--processor", "p", "--stream", "a", "--from-seq", "1"),
    ("tail",),
]
# The commands that only read: they never create a store (docs/operations.md).
READ_COMMANDS: list[tuple[str, ...]] = [
    ("status",),
    ("status", "--json"),
    ("events", "--stream", "a"),
    ("deadletters",),
    ("tail",),
]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, store: str, *streams: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "store": store,
        "streams": list(streams) or [
            {"name": "a", "transport": "sse", "url": "http://127.0.0.1:9/feed"}],
        "processors": [{"name": "p", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}],
    }))
    return path


async def cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "LONGLINE_TEST_TOKEN": "tok-5ecret"})
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c))
async def test_unreachable_postgres_is_one_line_naming_the_host_not_the_password(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    port = closed_port()
    cfg = write_config(tmp_path / "c.yaml", f"postgresql://app:pa55word@127.0.0.1:{port}/test")
    code, out, err = await cli(command[0], str(cfg), *command[1:])
    assert (code, out) == (1, "")
    assert err == (
        f"{cfg}: store: PostgreSQL: could not connect to 127.0.0.1:{port}/test:"
        f" ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {port})\n"
    )


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c))
async def test_sqlite_path_in_a_missing_directory_is_named(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "no-such-dir" / "x.db"
    cfg = write_config(tmp_path / "c.yaml", f"sqlite:///{db}")
    code, out, err = await cli(command[0], str(cfg), *command[1:])
    assert (code, out) == (1, "")
    assert err == (
        f"{cfg}: store: SQLite store {db}: directory {db.parent} does not exist\n"
    )
    assert not db.parent.exists()


async def test_check_connect_reports_store_and_each_stream(
    provider: Provider, tmp_path: Path
) -> None:
    port = closed_port()
    db = tmp_path / "x.db"
    cfg = write_config(
        tmp_path / "c.yaml", f"sqlite:///{db}",
        {"name": "ok-sse", "transport": "sse", "url": provider.url("sse", "a")},
        {"name": "ok-ws", "transport": "ws", "url": provider.url("ws", "b")},
        {"name": "ok-lines", "transport": "lines", "url": provider.url("lines", "c")},
        {"name": "denied", "transport": "sse", "url": provider.url("sse", "d", status=401),
         "headers": {"Authorization": "Bearer ${LONGLINE_TEST_TOKEN}"}},
        {"name": "denied-ws", "transport": "ws", "url": provider.url("ws", "e", status=403)},
        {"name": "closed", "transport": "lines", "url": f"http://127.0.0.1:{port}/x"},
    )
    code, out, err = await cli("check", str(cfg), "--connect")
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{cfg}: ok: 6 stream(s): ok-sse (sse), ok-ws (ws), ok-lines (lines), denied (sse),"
        " denied-ws (ws), closed (lines)",
        f"{cfg}: store: OK ({db} does not exist yet; run or init creates it)",
        f"{cfg}: stream ok-sse: OK",
        f"{cfg}: stream ok-ws: OK",
        f"{cfg}: stream ok-lines: OK",
        f"{cfg}: stream denied: HTTP 401 Unauthorized: refused",
        f"{cfg}: stream denied-ws: HTTP 403 Forbidden: refused",
        f"{cfg}: stream closed: network error: ClientConnectorError: Cannot connect to host"
        f" 127.0.0.1:{port} ssl:default [Connection refused]",
    ]
    assert not db.exists()  # check never creates the store
    # One handshake per stream, each closed again; the refused one was answered 401.
    assert {name: provider.feed(name).attempts for name in "abcde"} == dict.fromkeys("abcde", 1)
    assert provider.open_connections == 0


async def test_check_connect_all_ok_exits_0_and_opens_an_existing_store(
    provider: Provider, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    cfg = write_config(
        tmp_path / "c.yaml", f"sqlite:///{db}",
        {"name": "s", "transport": "sse", "url": provider.url("sse", "a")})
    assert (await cli("init", str(cfg)))[0] == 0
    code, out, err = await cli("check", str(cfg), "--connect")
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [f"{cfg}: store: OK", f"{cfg}: stream s: OK"]


async def test_check_takes_several_files_and_stdin(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.yaml", f"sqlite:///{tmp_path / 'x.db'}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"streams": [
        {"name": "a", "transport": "pigeon", "url": "http://127.0.0.1/"}]}))
    code, out, err = await cli("check", str(good), "-", stdin=good.read_bytes())
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{good}: ok: 1 stream(s): a (sse)",
        "-: ok: 1 stream(s): a (sse)",
    ]
    # Every file is checked; the worst result decides the exit code (2: invalid).
    code, out, err = await cli("check", "-", str(bad), str(good), stdin=bad.read_bytes())
    assert code == 2
    assert out == f"{good}: ok: 1 stream(s): a (sse)\n"
    assert err.startswith("-: invalid configuration:\n")
    assert f"{bad}: invalid configuration:\n" in err
    assert err.count("streams[0].transport:") == 2
    assert "Traceback" not in err


async def test_check_connect_on_postgres_and_on_dynamodb_without_tables(
    pg_url: str, dynamodb_url: str, tmp_path: Path
) -> None:
    pg = write_config(tmp_path / "pg.yaml", pg_url)
    dy = write_config(tmp_path / "dy.yaml", dynamodb_url)
    code, out, err = await cli("check", "--connect", str(pg), str(dy))
    assert (code, err) == (1, "")
    prefix = dynamodb_url.split("//")[1].split("?")[0]
    tables = ", ".join(f"{prefix}_{spec.suffix}" for spec in TABLES)
    assert [ln for ln in out.splitlines() if ": store:" in ln] == [
        f"{pg}: store: OK",
        f"{dy}: store: DynamoDB table(s) missing: {tables}. Create them with"
        " `longline init CONFIG` or start with `longline run --create-tables CONFIG`",
    ]


async def test_reading_commands_never_create_a_postgres_schema(
    pg_server: str, tmp_path: Path
) -> None:
    """A mistyped ``?schema=`` is one line naming the schema and the database (never the
    password), exit 1, and the schema is still not there afterwards."""
    import asyncpg

    schema = f"lltypo_{uuid.uuid4().hex[:12]}"
    url = pg_server.replace("postgresql://postgres@", "postgresql://postgres:pa55word@")
    cfg = write_config(tmp_path / "c.yaml", f"{url}?schema={schema}")
    for command in READ_COMMANDS:
        code, out, err = await cli(command[0], str(cfg), *command[1:])
        assert (code, out) == (1, ""), (command, err)
        assert err == (
            f"{cfg}: store: no PostgreSQL schema '{schema}' at 127.0.0.1:5432/test"
            " (`longline run` creates it)\n"
        ), command
    conn = await asyncpg.connect(pg_server)
    try:
        found = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
        assert found == 0
        # A schema that exists but holds no store (say `public` by mistake) is refused too,
        # and nothing is created in it.
        await conn.execute(f"CREATE SCHEMA {schema}")
        try:
            code, out, err = await cli("status", str(cfg))
            assert (code, out) == (1, "")
            assert err == (
                f"{cfg}: store: no longline store in PostgreSQL schema '{schema}' at"
                " 127.0.0.1:5432/test: table(s) events, longline_migrations, quarantine,"
                " status, streams missing (`longline run` creates them)\n"
            )
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema
            )
            assert tables == 0
        finally:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def test_reading_commands_never_create_dynamodb_tables(
    dynamodb_url: str, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.yaml", dynamodb_url)
    prefix = dynamodb_url.split("//")[1].split("?")[0]
    tables = ", ".join(f"{prefix}_{spec.suffix}" for spec in TABLES)
    for command in READ_COMMANDS:
        code, out, err = await cli(command[0], str(cfg), *command[1:])
        assert (code, out) == (1, ""), (command, err)
        assert err == (
            f"{cfg}: store: DynamoDB table(s) missing: {tables}. Create them with"
            " `longline init CONFIG` or start with `longline run --create-tables CONFIG`\n"
        ), command
