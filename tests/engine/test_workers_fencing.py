"""Fencing of a worker frozen past its lease: after SIGCONT it commits nothing more under the
epochs it lost while frozen.

Real processes, real signals, live-only feeds (which cannot replay, so what the frozen worker
read from its sockets after SIGCONT is events its successor may not have: storing them under
the lost epoch is what fencing forbids). Who committed each event is read from the store:
every event keeps the epoch of the append that stored it.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from longline.stores import Store
from longline.testing.provider import Provider
from tests.engine.workerlib import Workers, wait_until, write_config

NAMES = [f"f{i}" for i in range(6)]


def _write_locked(url: str) -> bool:
    """Whether another process holds the SQLite file's write lock right now."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def held(store: Store, owner: str) -> dict[str, int]:
    now = time.time()
    return {
        n: lease.epoch
        for n, lease in (await store.leases()).items()
        if lease.owner == owner and lease.expires_at > now
    }


@pytest.mark.parametrize("store_url", ["postgresql", "sqlite"], indirect=True)
async def test_a_worker_frozen_past_its_lease_commits_nothing_after_sigcont(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    feeds = {n: ("ws", "lines")[i % 2] for i, n in enumerate(NAMES)}
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, feeds, None, rate=50)
    data = yaml.safe_load(cfg.read_text())
    for s in data["streams"]:  # live-only: each connection starts where the provider is
        s.pop("cursor", None)
        s.pop("resume", None)
        s["url"] = s["url"].replace("since=0", "resumable=0")
    cfg.write_text(yaml.safe_dump(data))
    w = workers(cfg)
    ttl = 1.5
    await w.start("A", ttl=f"{ttl}s")
    await w.start("B", ttl=f"{ttl}s")

    async def split() -> bool:
        a, b = await held(store, "A"), await held(store, "B")
        return len(a) == len(b) == 3

    await wait_until(split, "A and B hold 3 streams each", 60)
    await asyncio.sleep(1.0)  # B commits for a while
    lost = await held(store, "B")
    w.signal("B", signal.SIGSTOP)
    # SQLite has one writer at a time and no server to time a frozen one out: frozen inside a
    # commit, B would hold the file's write lock (and A) until SIGCONT. Freeze it between
    # commits, which is what this test is about (PostgreSQL's case is in the campaign).
    for _ in range(50):
        if not store_url.startswith("sqlite") or not _write_locked(store_url):
            break
        w.signal("B", signal.SIGCONT)
        await asyncio.sleep(0.05)
        w.signal("B", signal.SIGSTOP)
    frozen_at = time.time()

    async def taken() -> bool:
        now = await store.leases()
        return all(now[n].owner == "A" and now[n].live for n in lost)

    await wait_until(taken, "A takes B's streams and goes live", 30)
    await asyncio.sleep(2.0)  # B's sockets fill with what the provider sends meanwhile
    w.signal("B", signal.SIGCONT)
    resumed = time.time()
    await asyncio.sleep(3.0)
    assert await w.terminate("A") == 0, w.log("A")
    assert await w.terminate("B") == 0, w.log("B")
    late = {}
    for name, epoch in lost.items():
        events = []
        after = 0
        while batch := await store.read(name, after, 5000):
            events += batch
            after = batch[-1].seq
        mine = [e for e in events if e.epoch == epoch]
        assert mine and min(e.received_at for e in mine) < frozen_at  # B did capture before
        late[name] = [e.seq for e in mine if e.received_at >= resumed]
    assert late == {n: [] for n in lost}, w.log("B")
