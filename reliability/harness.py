"""What every scenario needs: stores, canary secrets, configs, and `longline run` subprocesses
whose peak RSS and open file descriptors are sampled while they live."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from longline.stores import open_store
from longline.testing.faultproxy import FaultProxy
from longline.testing.provider import Provider

PG_SERVER = os.environ.get("LONGLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

# Canary secrets: present in every field that takes one, searched for everywhere afterwards.
CANARIES = {
    "REL_CANARY_HEADER": "canaryHDR7f3a91c2",
    "REL_CANARY_APIKEY": "canaryKEY0b8e44d1",
    "REL_CANARY_PASSWORD": "canaryPWD5c2d7e90",
    "REL_CANARY_QUERY": "canaryQRY91aa03f7",
    "REL_CANARY_SUBSCRIBE": "canarySUB4e6f12b8",
    # processor credentials (reliability/credentials.py)
    "REL_CANARY_WEBHOOK_BEARER": "canaryWHB3d90a7e1",
    "REL_CANARY_WEBHOOK_TOKEN": "canaryWHT6b21f0c4",
    "REL_CANARY_WEBHOOK_SECRET": "canaryWHS8e5c3a92",
    "REL_CANARY_REDIS_PASSWORD": "canaryRDS1f7b6d08",
    "REL_CANARY_NATS_TOKEN": "canaryNTS5a0e9c37",
}
SIZE = 200  # bytes per provider event


def env() -> dict[str, str]:
    """The environment every longline subprocess runs with: the canaries as variables."""
    return {**os.environ, **CANARIES}


@dataclass
class StoreSpec:
    """A fresh store for one scenario: a SQLite file or a PostgreSQL schema of its own."""

    kind: str
    url: str
    schema: str | None = None

    @classmethod
    def make(cls, kind: str, workdir: Path, name: str) -> StoreSpec:
        if kind == "sqlite":
            db = workdir / (name + ".db")
            for old in (db, db.with_suffix(".db-wal"), db.with_suffix(".db-shm")):
                old.unlink(missing_ok=True)
            return cls(kind, f"sqlite:///{db}")
        schema = f"rel_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        return cls(kind, f"{PG_SERVER}?schema={schema}", schema)

    async def drop(self) -> None:
        if self.schema is None:
            return
        import asyncpg

        conn = await asyncpg.connect(PG_SERVER)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


def stream_url(proxy: FaultProxy | None, provider: Provider, transport: str, feed: str,
               **params: object) -> str:
    """The feed's URL (through ``proxy`` when given) with a canary in the query and, for
    resumable feeds, in the credentials part (the provider ignores both)."""
    params = {"size": SIZE, **params}
    url = provider.url(transport, feed, token="TOKENPLACEHOLDER", **params)
    if proxy is not None:
        url = proxy.url(url)
    url = url.replace("TOKENPLACEHOLDER", "${REL_CANARY_QUERY}")
    if params.get("resumable", True):
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://feeduser:${{REL_CANARY_PASSWORD}}@{rest}"
    return url


def stream(name: str, transport: str, url: str, *, resumable: bool, **extra: Any) -> dict[str, Any]:
    """A stream entry with canary headers (Authorization only when the URL has no credentials);
    ws ones subscribe with a canary in the message."""
    headers = {"X-Api-Key": "${REL_CANARY_APIKEY}"}
    if "@" not in url:
        headers["Authorization"] = "Bearer ${REL_CANARY_HEADER}"
    s: dict[str, Any] = {
        "name": name,
        "transport": transport,
        "url": url,
        "key": "$.id",
        "headers": headers,
        "backoff": {"initial": "50ms", "max": "500ms"},
        "stall_timeout": "2s",
    }
    if resumable and transport != "sse":
        s.update(cursor="$.id", resume={"query": "since"})
    if transport == "ws":
        s["subscribe"] = ['{"op":"hello","token":"${REL_CANARY_SUBSCRIBE}"}']
    s.update(extra)
    return s


def write_config(path: Path, store: StoreSpec, streams: list[dict[str, Any]],
                 **extra: Any) -> Path:
    data: dict[str, Any] = {
        "store": store.url,
        "streams": streams,
        "writer": {"batch_max": 500, "batch_window": "10ms"},
        "shutdown_timeout": "5s",
        "log_summary_interval": "5s",
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(eq=False)
class Proc:
    """A `longline` subprocess; stderr goes to a log file that the secrets scan reads."""

    proc: asyncio.subprocess.Process
    started: float
    peak_rss_kb: int = 0
    fds: list[tuple[float, int]] = field(default_factory=list)
    _sampler: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
            n = len(os.listdir(f"/proc/{self.pid}/fd"))
            self.fds.append((asyncio.get_running_loop().time(), n))

    async def _sample_loop(self) -> None:
        while self.proc.returncode is None:
            self.sample()
            await asyncio.sleep(0.25)

    async def kill(self) -> int:
        self.sample()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        return await self.wait()

    async def term(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; a process that does not stop in ``timeout`` is killed (-9)."""
        self.sample()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), timeout)
        except TimeoutError:
            return await self.kill()

    async def wait(self) -> int:
        rc = await self.proc.wait()
        RUNNING.discard(self)
        if self._sampler is not None:
            await asyncio.gather(self._sampler, return_exceptions=True)
        return rc


RUNNING: set[Proc] = set()  # killed by ``kill_leftovers`` if the campaign is interrupted


def kill_leftovers() -> None:
    """SIGKILL every `longline` subprocess this campaign started that is still running."""
    for p in list(RUNNING):
        if p.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.proc.send_signal(signal.SIGKILL)
    RUNNING.clear()


async def spawn(cfg: Path, log: Path, *args: str) -> Proc:
    """`longline run CONFIG` (or another command) with the canaries in its environment."""
    argv = list(args) or ["run", str(cfg)]
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "longline", *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, env=env(),
        )
    p = Proc(proc, asyncio.get_running_loop().time())
    p._sampler = asyncio.create_task(p._sample_loop())
    RUNNING.add(p)
    return p


async def cli(*args: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run a longline command to completion: (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return int(proc.returncode or 0), out.decode("utf-8", "replace")


async def stored_count(url: str, streams: list[str]) -> dict[str, int]:
    """Events stored per stream (the store's lifetime totals, committed with the events)."""
    store = open_store(url)
    await store.open()
    try:
        totals = await store.totals()
    finally:
        await store.close()
    return {s: totals[s].events if s in totals else 0 for s in streams}


async def wait_stored(url: str, want: dict[str, int], timeout: float) -> dict[str, int]:
    """Poll until every stream has at least ``want`` events or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: dict[str, int] = {}
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            got = await stored_count(url, list(want))
            if all(got[s] >= n for s, n in want.items()):
                break
        await asyncio.sleep(0.3)
    return got
