"""Worker mode at scale on a store with ``BatchLeases`` and ``BatchStatus`` (SQLite): free
streams are taken in batches, and streams taken over together are reported together, with
one read of the saved statuses, not one per stream (which held a worker up for minutes when
thousands moved at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from longline.engine.workers import Worker
from longline.stores import SQLiteStore
from longline.testing.provider import Provider
from tests.conftest import make_config, wait_until


class CountingStore(SQLiteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.status_reads = 0
        self.acquire_calls: list[int] = []

    async def get_status(self) -> dict[str, dict[str, Any]]:
        self.status_reads += 1
        return await super().get_status()

    async def acquire_leases(self, streams: Any, owner: str, ttl: float) -> Any:
        self.acquire_calls.append(len(streams))
        return await super().acquire_leases(streams, owner, ttl)


async def test_streams_taken_over_together_are_reported_together(
    provider: Provider, tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(30)]
    cfg = make_config(tmp_path / "w.db", *(
        {"name": n, "transport": "lines", "key": "$.id", "url": provider.url("lines", n, total=0)}
        for n in names
    ))  # fmt: skip
    store = CountingStore(tmp_path / "w.db")
    worker = Worker(cfg, store=store, worker_id="W", lease_ttl=1.0, status_interval=0.1)
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: len(worker.held()) == 30, 15)
        assert store.acquire_calls[0] == 30  # all free streams in one call
        reads = store.status_reads
        for n in names:  # another owner takes every stream; it never goes live
            await store.take_lease(n, "intruder", 60)
        reason = "lease taken over by intruder (epoch 2)"
        for _ in range(300):  # W lets go after a ttl, then saves why (read without counting)
            saved = await SQLiteStore.get_status(store)
            if all(saved.get(n, {}).get("reason") == reason for n in names):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not reported within 15 s: {saved}")
        assert not worker.keepers
        assert store.status_reads - reads <= 3  # one per check that let streams go (was: 30)
        assert {saved[n]["state"] for n in names} == {"stopped"}
    finally:
        worker.stop()
        await task
