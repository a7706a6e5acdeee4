"""Worker mode with real processes: `longline run --worker` on one shared store.

Each test runs real `longline` processes against the local provider and checks the store
afterwards: the stored ids of every stream are exactly 1..N (nothing lost, nothing doubled),
who holds which lease, and what `longline status` reports. SQLite file, PostgreSQL and
DynamoDB (the moto server); fixtures in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from longline.stores import Store
from longline.testing.provider import Provider
from tests.engine.workerlib import (
    Workers,
    counts,
    ids,
    leases,
    status_json,
    wait_until,
    write_config,
)


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
    total = 1500
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

    async def split() -> bool:  # B steals its share, make-before-break
        held = await leases(store, names)
        return Counter(lease.owner for lease in held.values() if lease) == {"A": 2, "B": 2}

    await wait_until(split, "B steals two of A's streams")
    assert w.procs["B"].returncode is None, w.log("B")
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

    # The intruder never goes live: W captures on (make-before-break) for a ttl, then stops.
    await wait_until(a_stopped, "W stops stream a", timeout=20)
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


@pytest.mark.timeout(300)
@pytest.mark.parametrize("store_url", ["dynamodb"], indirect=True)
async def test_dynamodb_workers_balance_and_fail_over(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    """Worker mode on DynamoDB (the moto server, which answers one request at a time: a light
    load and a longer ttl). Two uncapped workers split four streams 2/2 by stealing; after a
    SIGKILL the survivor takes the dead one's streams; every stored set is exactly 1..N."""
    total = 120
    feeds = {"d0": "lines", "d1": "ws", "d2": "sse", "d3": "lines"}
    names = list(feeds)
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, feeds, total, rate=8)
    w = workers(cfg)
    await w.start("A", ttl="4s")

    async def a_holds_all() -> bool:
        return {x.owner if x else None for x in (await leases(store, names)).values()} == {"A"}

    await wait_until(a_holds_all, "A holds every stream", timeout=60)
    await w.start("B", ttl="4s")

    async def split() -> bool:
        held = await leases(store, names)
        return Counter(x.owner for x in held.values() if x) == {"A": 2, "B": 2}

    await wait_until(split, "B steals two streams", timeout=90)
    w.signal("A", signal.SIGKILL)
    await w.procs["A"].wait()

    async def b_finished() -> bool:
        owners = {x.owner if x else None for x in (await leases(store, names)).values()}
        return owners == {"B"} and await counts(store, names) == [total] * len(names)

    await wait_until(b_finished, "B took over and stored every event", timeout=120)
    assert await w.terminate("B") == 0, w.log("B")
    for n in names:
        assert await ids(store, n) == list(range(1, total + 1))
