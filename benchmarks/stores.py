"""The ``stores`` group: PostgreSQL and DynamoDB, through longline and alone (issue 5).

PostgreSQL: the server on 127.0.0.1:5432 (database ``test``, trust auth; ``LONGLINE_TEST_POSTGRES``
overrides, as for the tests). Every scenario gets a fresh schema (store URL ``?schema=...``),
migrated before timing as ``longline init`` would, and dropped afterwards. Several streams, since
one stream's appends are sequential transactions (one stream tops out near 90 k events/s).

DynamoDB: moto's server, started here as the tests start it (one request at a time), with dummy
credentials on an explicit client, so nothing from the environment's AWS setup is used. moto is a
test double: its events/s is a functional figure, not a speed claim; what carries over to AWS is
the write request units per 1 000 events (``DynamoDBStore.write_units``), which set the cost.

A service that is absent is skipped with the reason printed and recorded in the results.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from benchmarks import capture
from benchmarks.baselines.raw_sqlite import BATCH
from benchmarks.suite import Suite, _batches, log
from longline.core.model import AppendResult, Event
from longline.stores.base import Store

if TYPE_CHECKING:
    from pathlib import Path

PG_SERVER = os.environ.get("LONGLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REGION = "us-east-1"

# `python -m moto.server` serving one request at a time: its threaded default restores whole
# tables when a transaction is cancelled, wiping writes another request committed meanwhile
# (tests/services.py has the story). Real DynamoDB isolates transactions.
_MOTO_ONE_AT_A_TIME = """
import sys
import moto.server as server
run = server.run_simple
server.run_simple = lambda *a, **k: run(*a, **{**k, "threaded": False})
server.main(sys.argv[1:])
"""


async def run(suite: Suite, run: int) -> None:
    """One run of the group: PostgreSQL scenarios, then DynamoDB; each skipped when absent."""
    problem = await pg_missing(PG_SERVER)
    if problem:
        _skip(suite, run, "postgres", problem)
    else:
        version = (await _pg(PG_SERVER, "SHOW server_version"))[0][0]
        sync = (await _pg(PG_SERVER, "SHOW synchronous_commit"))[0][0]
        server = {"version": str(version), "synchronous_commit": str(sync)}
        suite.got.detail("postgres.server", run, server)
        await _postgres(suite, run)
    try:
        with moto_server() as moto:
            await _dynamodb(suite, run, moto)
    except ServiceMissing as exc:
        _skip(suite, run, "dynamodb", str(exc))


class ServiceMissing(Exception):
    """A store's service is not there: its scenarios are skipped with this reason."""


def _skip(suite: Suite, run: int, store: str, reason: str) -> None:
    log(f"  run {run + 1}  {store} skipped: {reason}")
    suite.got.detail(f"skipped.{store}", run, {"reason": reason})


# -- PostgreSQL ------------------------------------------------------------------------------


async def _postgres(suite: Suite, run: int) -> None:
    n, streams = suite.plan.events, suite.plan.pg_streams
    # 1000-event batches as the writer makes them (fewer on tiny runs, so every stream has some)
    batches = _batches(suite.rows(n, 200, "id"), min(BATCH, -(-n // streams)))

    per_stream = n // streams
    want = {f"{capture.STREAM}{i}": per_stream for i in range(streams)}

    def store_alone(url: str, k: int) -> Callable[[Path], Awaitable[float]]:
        async def go(d: Path) -> float:
            return await pg_store_only(url, batches, k)

        return go

    def durable(url: str) -> Callable[[Path], Awaitable[float]]:
        async def go(d: Path) -> float:
            urls = [suite.url("lines", "pg", per_stream) for _ in range(streams)]
            return await capture.capture_streams(urls, "lines", per_stream * streams, url)

        return go

    # schema set-up, the check of what was stored and the drop stay out of the measured CPU
    cpu = postgres_cpu_seconds
    for name, k in (("postgres_store", streams), ("postgres_store.1stream", 1)):
        async with pg_schema(PG_SERVER) as url:
            await suite.measure(name, run, store_alone(url, k), events=n, server=cpu)
            await check_pg(url, _dealt(batches, k))
    async with pg_schema(PG_SERVER) as url:
        fn = durable(url)
        await suite.measure("postgres.lines", run, fn, events=per_stream * streams, server=cpu)
        await check_pg(url, want)


def _dealt(batches: Sequence[Sequence[Event]], streams: int) -> dict[str, int]:
    """Events per stream when ``batches`` are dealt round-robin to ``streams`` streams."""
    return {
        f"{capture.STREAM}{i}": sum(len(b) for b in batches[i::streams]) for i in range(streams)
    }


async def pg_missing(dsn: str) -> str | None:
    """None when PostgreSQL answers at ``dsn``, else why not."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[postgres]')"
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception as exc:  # any failure to connect means: not there for us
        return f"PostgreSQL at {dsn} does not answer: {type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _pg(dsn: str, sql: str, *args: object) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@asynccontextmanager
async def pg_schema(dsn: str) -> AsyncIterator[str]:
    """A store URL on a fresh schema, created and migrated now, dropped on exit."""
    from longline.stores.postgres.store import from_url

    schema = f"llbench_{uuid.uuid4().hex[:12]}"
    url = f"{dsn}?schema={schema}"
    try:
        store = from_url(url)
        await store.open()  # create + migrate before anything is timed
        await store.close()
        yield url
    finally:
        await _pg(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def pg_store_only(url: str, batches: Sequence[Sequence[Event]], streams: int) -> float:
    """``PostgresStore.append`` alone: the prebuilt batches dealt round-robin to ``streams``
    streams, each stream appending its batches in order, all streams at once; events/s."""
    from longline.stores.postgres.store import from_url

    store = from_url(url)
    await store.open()
    try:

        async def append_all(i: int) -> None:
            for batch in batches[i::streams]:
                await store.append(f"{capture.STREAM}{i}", batch)

        start = time.perf_counter()
        await asyncio.gather(*(append_all(i) for i in range(streams)))
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    return sum(len(b) for b in batches) / elapsed


async def check_pg(url: str, want: dict[str, int]) -> None:
    """Fail unless the schema in ``url`` holds exactly ``want`` events per stream, seqs 1..n."""
    dsn, schema = url.split("?schema=")
    rows = await _pg(
        dsn,
        f"SELECT stream, count(*) AS n, max(seq) AS last FROM {schema}.events GROUP BY stream",
    )
    got = {r["stream"]: (int(r["n"]), int(r["last"])) for r in rows}
    if got != {s: (k, k) for s, k in want.items()}:
        raise RuntimeError(f"PostgreSQL stored {got}, expected {want} (count, last seq)")


def postgres_cpu_seconds() -> float:
    """CPU seconds of every ``postgres`` process on this machine (server, backends, and backends
    already gone through the server's children times); 0 when none is visible (Linux)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        if text[text.find("(") + 1 : text.rfind(")")] != "postgres":
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


# -- DynamoDB on moto ------------------------------------------------------------------------


async def _dynamodb(suite: Suite, run: int, moto: Moto) -> None:
    n = suite.plan.dynamodb_events
    figures: dict[str, Any] = {}

    async def durable(d: Path) -> float:
        feed = suite.url("lines", "ddb", n)
        rate, wru, appends = await dynamodb_capture(feed, n, moto.endpoint)
        figures.update(
            events=n,
            write_units=wru,
            wru_per_1000_events=wru / n * 1000,
            appends=appends,
            events_per_append=n / appends,
        )
        return rate

    await suite.measure("dynamodb_moto.lines", run, durable, events=n, server=moto.cpu_seconds)
    suite.got.detail("dynamodb_moto.lines", run, figures)
    log(
        f"  run {run + 1}  {'dynamodb_moto.lines':<28} {figures['wru_per_1000_events']:,.0f} "
        f"WRU per 1,000 events ({figures['appends']} appends of "
        f"{figures['events_per_append']:.0f} events on average)"
    )


class CountingStore:
    """Wraps a store and counts ``append`` calls (the writer's batches)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.appends = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(
        self, stream: str, events: Sequence[Event], *args: Any, **kw: Any
    ) -> AppendResult:
        """Count, then append through the wrapped store."""
        self.appends += 1
        result: AppendResult = await self.inner.append(stream, events, *args, **kw)
        return result


async def dynamodb_capture(feed: str, n: int, endpoint: str) -> tuple[float, int, int]:
    """longline lines -> DynamoDB (moto) of ``n`` events on fresh tables (created before
    timing); returns events/s, write request units spent, and the number of appends."""
    from longline.stores.dynamodb.store import DynamoDBStore

    prefix = f"llbench{uuid.uuid4().hex[:12]}"
    url = f"dynamodb://{prefix}?region={REGION}&endpoint_url={endpoint}"
    client = _moto_client(endpoint)
    store = DynamoDBStore(prefix, region=REGION, create_tables=True, client=client)
    await store.open()
    await store.close()
    store.write_units = 0
    counting = CountingStore(store)
    rate = await capture.capture_streams([feed], "lines", n, url, store=cast(Store, counting))
    await store.open()
    try:
        stored = await store.last_seq(f"{capture.STREAM}0")
    finally:
        await store.close()
    if stored != n:
        raise RuntimeError(f"DynamoDB stored {stored} events, expected {n}")
    return rate, store.write_units, counting.appends


def _moto_client(endpoint: str) -> Any:
    """A boto3 client for moto with dummy credentials (never the environment's)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        region_name=REGION,
    )
    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=16)
    return session.client("dynamodb", endpoint_url=endpoint, config=config)


@dataclass(frozen=True)
class Moto:
    """A running moto server: where it listens, and its CPU time so far (Linux)."""

    endpoint: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server has used."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[Moto]:
    """A fresh moto server on a free loopback port; ``ServiceMissing`` when there is none."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise ServiceMissing(f"moto[server] and boto3 are needed: {exc}") from exc
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cmd = [sys.executable, "-c", _MOTO_ONE_AT_A_TIME, "-p", str(port), "-H", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ServiceMissing(f"moto server exited with {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"moto server did not listen on 127.0.0.1:{port} within {timeout} s"
                    raise ServiceMissing(msg) from None
                time.sleep(0.05)
        yield Moto(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.kill()  # it keeps everything in memory: nothing to shut down cleanly
        proc.wait()
