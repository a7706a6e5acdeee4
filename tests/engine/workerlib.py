"""Helpers for the worker-mode tests: real `longline run --worker` processes on one store."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.core.model import Lease
from longline.stores import Store
from longline.testing.provider import Provider, event_bytes

TTL = "1.5s"
LOG_LEVEL = os.environ.get("LONGLINE_TEST_WORKER_LOG", "INFO")  # DEBUG: each balance round


def write_config(
    path: Path,
    url: str,
    provider: Provider,
    feeds: dict[str, str],
    total: int | None,
    rate: int,
    **extra: Any,
) -> Path:
    streams: list[dict[str, Any]] = []
    for name, transport in feeds.items():
        s: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "key": "$.id",
            # since=0: start at event 1 on a first connection; resume replaces it afterwards.
            "url": provider.url(transport, name, total=total, rate=rate, since=0),
            "backoff": {"initial": "50ms", "max": "500ms"},
        }
        if transport != "sse":
            s.update(cursor="$.id", resume={"query": "since"})
        streams.append(s)
    data = {"store": url, "streams": streams, "writer": {"batch_max": 500, "batch_window": "10ms"}}
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return path


class Workers:
    """Starts `longline run --worker` processes; kills what is left at the end."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, worker_id: str, *args: str, ttl: str = TTL) -> None:
        log = (self.logs / f"{worker_id}.log").open("wb")
        self.procs[worker_id] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "longline", "--log-level", LOG_LEVEL, "run", str(self.config),
            "--worker", "--worker-id", worker_id, "--lease-ttl", ttl, *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        log.close()

    def log(self, worker_id: str) -> str:
        return (self.logs / f"{worker_id}.log").read_text(errors="replace")[-3000:]

    def signal(self, worker_id: str, sig: signal.Signals) -> None:
        self.procs[worker_id].send_signal(sig)

    async def terminate(self, worker_id: str) -> int:
        """SIGTERM, then the exit code (a clean shutdown is 0)."""
        proc = self.procs[worker_id]
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), 15)

    async def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGCONT)  # a frozen one must be able to die
                proc.kill()
                await proc.wait()


async def ids(store: Store, stream: str) -> list[int]:
    """The id of every stored event of ``stream`` in seq order (checking seqs are gapless and
    payloads are the provider's bytes)."""
    out: list[int] = []
    after = 0
    while batch := await store.read(stream, after, 5000):
        for ev in batch:
            assert ev.seq == after + 1, "seq must be gapless"
            after = ev.seq
            out.append(int(orjson.loads(ev.payload)["id"]))
            assert ev.payload.encode() == event_bytes(stream, out[-1])
    return out


async def counts(store: Store, names: list[str]) -> list[int]:
    return [len(await ids(store, n)) for n in names]


async def leases(store: Store, names: list[str]) -> dict[str, Lease | None]:
    return {n: await store.get_lease(n) for n in names}


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


async def status_json(config: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "status", str(config), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    data: dict[str, Any] = orjson.loads(out)
    return data
