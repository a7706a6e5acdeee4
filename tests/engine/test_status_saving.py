"""Statuses are saved together where the store can (``BatchStatus``): a process holding
thousands of streams makes a few store calls per ``status_interval``, not one per stream."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from longline.engine import runner as runner_module
from longline.stores import SQLiteStore
from longline.testing.provider import Provider
from tests.conftest import make_config


class CountingStore(SQLiteStore):
    """A SQLite store that records how statuses reach it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        self.singles.append(stream)
        await super().put_status(stream, status)

    async def put_statuses(self, statuses: Mapping[str, dict[str, Any]]) -> None:
        self.batches.append(sorted(statuses))
        await super().put_statuses(statuses)


async def test_statuses_are_saved_in_batches(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "STATUS_BATCH", 2)
    names = [f"s{i}" for i in range(5)]
    cfg = make_config(tmp_path / "t.db", *(
        {"name": n, "transport": "lines", "key": "$.id", "url": provider.url("lines", n, total=0)}
        for n in names
    ))  # fmt: skip
    store = CountingStore(tmp_path / "t.db")
    runner = runner_module.Runner(cfg, store=store, status_interval=0.1)
    await capture_until_saved(runner, store)
    rounds = [store.batches[i : i + 3] for i in range(0, 6, 3)]
    for batches in rounds:  # each round: every stream once, two per call
        assert sorted(n for b in batches for n in b) == names
        assert sorted(len(b) for b in batches) == [1, 2, 2]
    assert store.singles == []  # not one call per stream
    async with SQLiteStore(tmp_path / "t.db") as reader:
        saved = await reader.get_status()
    assert sorted(saved) == names and all(s["state"] for s in saved.values())


async def capture_until_saved(runner: runner_module.Runner, store: CountingStore) -> None:
    """Run until at least two status rounds were saved, then stop."""
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):
            if len(store.batches) >= 6:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"statuses not saved: {store.batches}")
    finally:
        runner.stop()
        await task
