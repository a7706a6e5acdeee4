"""Worker mode with real processes: `longline run --worker` on one shared store.

Each test runs real `longline` processes against the local provider and checks the store
afterwards: the stored ids of every stream are exactly 1..N (nothing lost, nothing doubled),
who holds which lease, and what `longline status` reports. SQLite file and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.core.model import Lease
from longline.stores import Store, open_store
from longline.testing.provider import Provider, event_bytes

TTL = "1.5s"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The test's own view of the shared store (another process, as it were)."""
    s = open_store(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def write_config(
    path: Path, url: str, provider: Provider, feeds: dict[str, str], total: int, rate: int
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
            sys.executable, "-m", "longline", "--log-level", "INFO", "run", str(self.config),
            "--worker", "--worker-id", worker_id, "--lease-ttl", ttl, *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        log.close()

    def log(self, worker_id: str) -> str:
        return (self.logs / f"{worker_id}.log").read_text(errors="replace")[-3000:]

    async def terminate(self, worker_id: str) -> int:
        """SIGTERM, then the exit code (a clean shutdown is 0)."""
        proc = self.procs[worker_id]
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(proc.wait(), 15)

    async def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Callable[[Path], Workers]]:
    made: list[Workers] = []

    def make(config: Path) -> Workers:
        made.append(Workers(config, tmp_path))
        return made[-1]

    yield make
    for w in made:
        await w.kill_all()


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


async def test_two_capped_workers_split_the_streams(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    total = 300
    feeds = {"s0": "sse", "s1": "ws", "s2": "lines", "s3": "sse"}
    names = list(feeds)
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, feeds, total, rate=150)
    w = workers(cfg)
    await w.start("A", "--max-streams", "2")
    await w.start("B", "--max-streams", "2")

    async def all_stored() -> bool:
        return await counts(store, names) == [total] * len(names)

    await wait_until(all_stored, "every stream is stored")
    held = await leases(store, names)
    assert Counter(lease.owner for lease in held.values() if lease) == {"A": 2, "B": 2}
    assert {n: lease.epoch for n, lease in held.items() if lease} == dict.fromkeys(names, 1)
    assert all(lease and lease.expires_at > time.time() for lease in held.values())
    assert await w.terminate("A") == 0, w.log("A")
    assert await w.terminate("B") == 0, w.log("B")

    after = await leases(store, names)
    assert {n: (lease.owner, lease.epoch) for n, lease in after.items() if lease} == {
        n: (lease.owner, 1) for n, lease in held.items() if lease
    }
    now = time.time()
    assert [n for n, lease in after.items() if lease and lease.expires_at > now] == []  # released
    for n in names:
        assert await ids(store, n) == list(range(1, total + 1))
    status = (await status_json(cfg))["streams"]
    owners = {n: lease.owner for n, lease in held.items() if lease}
    assert {n: (st["worker"], st["epoch"], st["state"]) for n, st in status.items()} == {
        n: (owners[n], 1, "stopped") for n in names
    }
    assert {n: st["events"] for n, st in status.items()} == dict.fromkeys(names, total)


async def test_failover_after_sigkill(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    total = 600
    feeds = {"f0": "sse", "f1": "ws", "f2": "lines", "f3": "ws"}
    names = list(feeds)
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, feeds, total, rate=150)
    w = workers(cfg)
    await w.start("A")

    async def a_captures_all() -> bool:
        owners = {lease.owner if lease else None for lease in (await leases(store, names)).values()}
        return owners == {"A"} and min(await counts(store, names)) >= 20

    await wait_until(a_captures_all, "A owns and captures every stream")
    await w.start("B")
    await asyncio.sleep(1.5)  # B is up, finds every lease held and idles
    assert w.procs["B"].returncode is None, w.log("B")
    held = await leases(store, names)
    assert {n: (lease.owner, lease.epoch) for n, lease in held.items() if lease} == {
        n: ("A", 1) for n in names
    }
    w.procs["A"].send_signal(signal.SIGKILL)
    assert await w.procs["A"].wait() == -signal.SIGKILL
    at_kill = {n: len(await ids(store, n)) for n in names}
    assert min(at_kill.values()) < total, "A must die mid-capture"

    async def b_finished() -> bool:
        owners = {lease.owner if lease else None for lease in (await leases(store, names)).values()}
        return owners == {"B"} and await counts(store, names) == [total] * len(names)

    await wait_until(b_finished, "B took over and stored every event")
    assert {n: lease.epoch for n, lease in (await leases(store, names)).items() if lease} == (
        dict.fromkeys(names, 2)
    )
    assert await w.terminate("B") == 0, w.log("B")
    for n in names:
        assert await ids(store, n) == list(range(1, total + 1))
        assert provider.stats[n].connections >= 2  # A's connection, then B's


async def test_superseded_worker_stops_and_never_moves_the_checkpoint(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    feeds = {"a": "lines", "b": "ws"}
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, feeds, 1_000_000, rate=1000)
    w = workers(cfg)
    # A long ttl: the newer epoch is almost always met by an append (fenced) before a renewal.
    await w.start("W", ttl="6s")

    async def capturing() -> bool:
        owners = {x.owner if x else None for x in (await leases(store, ["a", "b"])).values()}
        return owners == {"W"} and len(await ids(store, "a")) >= 20

    await wait_until(capturing, "W captures both streams")
    taken = await store.take_lease("a", "intruder", 60)
    assert (taken.owner, taken.epoch) == ("intruder", 2)
    checkpoint = await store.checkpoint("a")
    at_take = len(await ids(store, "a"))

    async def a_stopped() -> bool:
        return (await store.get_status()).get("a", {}).get("state") == "stopped"

    await wait_until(a_stopped, "W stops stream a", timeout=10)
    sent, stored_a, stored_b = (
        provider.stats["a"].events_sent,
        await ids(store, "a"),
        len(await ids(store, "b")),
    )
    await asyncio.sleep(1.0)
    assert provider.stats["a"].events_sent == sent  # its connection is closed
    assert await ids(store, "a") == stored_a  # nothing more is written
    assert len(await ids(store, "b")) > stored_b  # the other stream goes on
    # W's appends after the take inserted events but left the checkpoint where it was.
    assert len(stored_a) > at_take
    assert stored_a == list(range(1, len(stored_a) + 1))
    assert checkpoint is not None and stored_a[-1] > int(checkpoint)
    assert await store.checkpoint("a") == checkpoint
    status = (await store.get_status())["a"]
    assert (status["worker"], status["epoch"]) == ("W", 1)
    assert status["reason"] == "lease taken over by intruder (epoch 2)"

    assert await w.terminate("W") == 0, w.log("W")
    assert await store.checkpoint("a") == checkpoint
    after = await leases(store, ["a", "b"])
    lease_a, lease_b = after["a"], after["b"]
    assert lease_a is not None and lease_b is not None
    assert (lease_a.owner, lease_a.epoch) == ("intruder", 2)
    assert lease_a.expires_at > time.time()  # W did not release (or retake) the intruder's
    assert (lease_b.owner, lease_b.epoch) == ("W", 1)
    assert lease_b.expires_at <= time.time()  # released on shutdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-streams", "2"], "--worker-id, --max-streams and --lease-ttl need --worker"),
        (["--worker", "--lease-ttl", "100ms"], "must be at least 300ms"),
        (["--worker", "--lease-ttl", "soon"], "invalid duration 'soon'"),
    ],
)
def test_worker_flags_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from longline.cli import main

    cfg = tmp_path / "w.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"streams": [{"name": "s", "transport": "sse", "url": "http://127.0.0.1:9/"}]}
        )
    )
    result = CliRunner().invoke(main, ["run", str(cfg), *args])
    assert result.exit_code == 2
    assert message in result.output
