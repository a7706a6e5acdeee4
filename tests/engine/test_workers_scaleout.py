"""Scale-out across machines, the sequence a new user tried: three `longline run --worker`
processes without ``--max-streams`` on one store, twelve streams, one worker SIGKILLed, one
frozen with SIGSTOP past the lease TTL and then resumed, one joining late.

Real processes, real signals, the local provider. The test watches every lease as it goes
(epochs only grow, no stream changes owner twice within a second) and checks that the streams
spread evenly after each step, that a dead worker's streams are taken over about a TTL after
its death, that at the end every stream is held by a live worker *and* being captured (new
events keep arriving), and that nothing was lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from longline.core.model import Lease
from longline.stores import Store
from longline.testing.provider import Provider
from tests.engine.workerlib import Workers, ids, status_json, wait_until, write_config

NAMES = [f"s{i:02d}" for i in range(12)]
FEEDS = {n: ("lines", "ws", "sse")[i % 3] for i, n in enumerate(NAMES)}


@dataclass
class Watch:
    """Polls every lease; keeps each stream's (time, owner, epoch) changes."""

    store: Store
    changes: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)
    now: dict[str, Lease] = field(default_factory=dict)

    async def poll(self) -> dict[str, Lease]:
        self.now = await self.store.leases()
        at = time.time()
        for name, lease in self.now.items():
            seen = self.changes.setdefault(name, [])
            if not seen or seen[-1][1:] != (lease.owner, lease.epoch):
                seen.append((at, lease.owner, lease.epoch))
        return self.now

    async def run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.poll()
            await asyncio.sleep(0.2)

    async def spread(self, *live: str) -> Counter[str] | None:
        """Streams per worker when every stream is held (unexpired) by one of ``live``."""
        now = await self.poll()
        held = Counter(
            lease.owner
            for lease in now.values()
            if lease.owner in live and lease.expires_at > time.time()
        )
        return held if sum(held.values()) == len(NAMES) else None

    async def even(self, *live: str) -> bool:
        held = await self.spread(*live)
        return (
            held is not None
            and len(held) == len(live)
            and max(held.values()) - min(held.values()) <= 1
        )

    def report(self) -> str:
        return "\n".join(
            f"{n}: " + ", ".join(f"{t % 1000:.2f} {o}@{e}" for t, o, e in seen)
            for n, seen in sorted(self.changes.items())
        )


@contextlib.asynccontextmanager
async def watching(store: Store) -> AsyncIterator[Watch]:
    watch = Watch(store)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stored(store: Store) -> dict[str, int]:
    totals = await store.totals()
    return {n: totals[n].events if n in totals else 0 for n in NAMES}


@pytest.mark.parametrize("store_url", ["postgresql", "sqlite"], indirect=True)
async def test_kill_freeze_late_join_every_stream_captured_and_spread(
    provider: Provider,
    tmp_path: Path,
    store_url: str,
    store: Store,
    workers: Callable[[Path], Workers],
) -> None:
    # The moto server answers one request at a time: a lighter load and a longer ttl there.
    slow = store_url.startswith("dynamodb")
    rate, lease_ttl = (3, 6.0) if slow else (30, 2.0)
    cfg = write_config(tmp_path / "w.yaml", store_url, provider, FEEDS, None, rate=rate)
    w = workers(cfg)
    ttl = f"{lease_ttl}s"
    async with watching(store) as watch:
        await w.start("A", ttl=ttl)
        await w.start("B", ttl=ttl)
        await wait_until(
            lambda: watch.even("A", "B"), "A and B hold 6 streams each", 30 * lease_ttl
        )

        await w.start("C", ttl=ttl)  # joins late: steals its share
        await wait_until(lambda: watch.even("A", "B", "C"), "4 streams each", 30 * lease_ttl)

        w.signal("A", signal.SIGKILL)
        await w.procs["A"].wait()
        killed = time.time()
        orphans = {n for n, lease in watch.now.items() if lease.owner == "A"}
        await wait_until(lambda: watch.spread("B", "C"), "B and C take A's streams", 30 * lease_ttl)
        took = time.time() - killed
        assert took < 2 * lease_ttl + 3, f"A's streams were taken over {took:.1f}s after its death"
        assert orphans and all(watch.now[n].owner in ("B", "C") for n in orphans)
        await wait_until(lambda: watch.even("B", "C"), "6 streams each", 30 * lease_ttl)

        w.signal("B", signal.SIGSTOP)
        await asyncio.sleep(2.5 * lease_ttl)
        w.signal("B", signal.SIGCONT)
        await wait_until(lambda: watch.even("B", "C"), "B takes its share back", 30 * lease_ttl)
        settled = time.time()

        # The last seconds: every stream held by a live worker, and being captured.
        before = await stored(store)
        await asyncio.sleep(3.0 if rate > 10 else 8.0)
        assert await watch.even("B", "C"), watch.report()
        after = await stored(store)
        silent = [n for n in NAMES if after[n] <= before[n]]
        assert silent == [], f"leased but not captured: {silent}\n{watch.report()}"
        moved = [n for n, seen in watch.changes.items() if seen[-1][0] > settled]
        assert moved == [], f"leases still moving: {moved}\n{watch.report()}"
        status = (await status_json(cfg))["streams"]
        assert {n: (st["lease"]["owner"], st["lease"]["epoch"]) for n, st in status.items()} == {
            n: (lease.owner, lease.epoch) for n, lease in watch.now.items()
        }
    for name in ("B", "C"):
        assert await w.terminate(name) == 0, w.log(name)
    for n in NAMES:
        got = await ids(store, n)
        assert got == list(range(1, len(got) + 1)), n  # nothing lost, nothing doubled
        seen = watch.changes[n]
        epochs = [e for _, _, e in seen]
        assert epochs == sorted(set(epochs)), (n, epochs)  # epochs only grow
        twice = [b[0] - a[0] for a, b in zip(seen, seen[2:], strict=False) if b[0] - a[0] < 1]
        assert twice == [], f"{n} changed owner twice within a second:\n{watch.report()}"
