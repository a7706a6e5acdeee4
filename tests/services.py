"""The real services the tests talk to, as fixtures every test module can ask for.

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``).

- PostgreSQL: the server on 127.0.0.1:5432 (database ``test``, trust auth; override with
  ``LONGLINE_TEST_POSTGRES``); every test gets its own schema, dropped afterwards.
- DynamoDB: moto's server mode, started once per session on a free loopback port as a
  subprocess (one request at a time, see below), with dummy AWS credentials; every test gets
  its own table prefix.

A missing service skips its tests with the reason, except when ``LONGLINE_REQUIRE_SERVICES=1``
(CI), where it fails them: a green CI must mean all three stores passed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest

PG_SERVER = os.environ.get("LONGLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def service_missing(reason: str) -> NoReturn:
    """Skip, or fail when ``LONGLINE_REQUIRE_SERVICES=1`` says every service must be there."""
    if os.environ.get("LONGLINE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required: LONGLINE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


# -- PostgreSQL ----------------------------------------------------------------------------


async def _pg_ping(dsn: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[test]')"
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception as exc:
        return f"PostgreSQL at {dsn} does not answer: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL test server's DSN (checked once per session)."""
    problem = asyncio.run(_pg_ping(PG_SERVER))
    if problem:
        service_missing(problem)
    return PG_SERVER


async def pg_execute(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A store URL on a fresh schema, dropped after the test (sync: usable from any fixture)."""
    schema = f"lltest_{uuid.uuid4().hex[:12]}"
    yield f"{pg_server}?schema={schema}"
    asyncio.run(pg_execute(pg_server, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


# -- DynamoDB on moto ----------------------------------------------------------------------


# `python -m moto.server`, serving one request at a time. Its threaded default is not atomic:
# a cancelled TransactWriteItems restores deep copies of whole tables, wiping writes that another
# request committed meanwhile (seen here: 160 keys stored but only 155 events). DynamoDB itself
# isolates transactions, so the concurrency tests need moto to do the same.
_MOTO_ONE_AT_A_TIME = """
import sys
import moto.server as server
run = server.run_simple
server.run_simple = lambda *a, **k: run(*a, **{**k, "threaded": False})
server.main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"moto server exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return None
        except OSError:
            time.sleep(0.05)
    return f"moto server did not listen on 127.0.0.1:{port} within {timeout} s"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server (dummy credentials set in os.environ)."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        service_missing(f"moto[server] and boto3 are needed for DynamoDB tests: {exc}")
    saved = {k: os.environ.get(k) for k in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    port = _free_port()
    cmd = [sys.executable, "-c", _MOTO_ONE_AT_A_TIME, "-p", str(port), "-H", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        problem = _wait_listening(port, proc, 30.0)
        if problem:
            service_missing(problem)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()  # it keeps everything in memory: nothing to shut down cleanly
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def dynamodb_url(moto_endpoint: str) -> str:
    """A store URL with a fresh table prefix (moto forgets everything when it stops)."""
    return f"dynamodb://lltest{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint_url={moto_endpoint}"
