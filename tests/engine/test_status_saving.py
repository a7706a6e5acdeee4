"""Statuses are saved together where the store can (``BatchStatus``): a process holding
thousands of streams makes a few store calls per ``status_interval``, not one per stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from longline.engine import runner as runner_module
from longline.stores import SQLiteStore, StoreError
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
    store = CountingStore(tmp_path / "t.db")
    await run_until(idle_runner(provider, tmp_path, names, store), lambda: store.batches)
    first = store.batches[:3]  # the first round: every stream once, two per call
    assert sorted(n for b in first for n in b) == names
    assert sorted(len(b) for b in first) == [1, 2, 2]
    assert store.singles == []  # not one call per stream
    async with SQLiteStore(tmp_path / "t.db") as reader:
        saved = await reader.get_status()
    assert sorted(saved) == names and all(s["state"] == "stopped" for s in saved.values())


async def test_an_unchanged_status_is_saved_only_now_and_then(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 0.1 s a round, but an idle stream's status, once live, is saved again only when
    it changes or ``STATUS_REFRESH`` (here 0.5 s) has passed; the final one always."""
    monkeypatch.setattr(runner_module, "STATUS_REFRESH", 0.5)
    store = CountingStore(tmp_path / "t.db")
    runner = idle_runner(provider, tmp_path, ["idle"], store)
    loop = asyncio.get_running_loop()
    saves: list[tuple[float, str]] = []
    real = store.put_statuses

    async def put_statuses(statuses: Mapping[str, dict[str, Any]]) -> None:
        saves.extend((loop.time(), st["state"]) for st in statuses.values())
        await real(statuses)

    store.put_statuses = put_statuses  # type: ignore[method-assign]
    start = loop.time()
    await run_until(runner, lambda: loop.time() - start > 2.2)
    live = [t for t, state in saves if state == "live"]
    gaps = [b - a for a, b in itertools.pairwise(live)]
    # ~20 rounds; live saves at the first live round, then once per 0.5 s (one round late
    # at most), and the final one, which is "stopped".
    assert 3 <= len(live) <= 6, saves
    assert all(0.45 <= g <= 0.75 for g in gaps), gaps
    assert saves[-1][1] == "stopped"


def idle_runner(
    provider: Provider, tmp_path: Path, names: list[str], store: SQLiteStore
) -> runner_module.Runner:
    cfg = make_config(tmp_path / "t.db", *(
        {"name": n, "transport": "lines", "key": "$.id", "url": provider.url("lines", n, total=0)}
        for n in names
    ))  # fmt: skip
    return runner_module.Runner(cfg, store=store, status_interval=0.1)


async def run_until(runner: runner_module.Runner, done: Callable[[], object]) -> None:
    """Run until ``done()`` is true (within 10 s), then stop."""
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):
            if done():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("not done within 10 s")
    finally:
        runner.stop()
        await task


async def test_a_status_whose_save_failed_is_saved_again_at_the_next_round(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refuses one save: the statuses it carried are not taken as saved, so the next
    round (0.1 s later) saves them again, unchanged, instead of waiting ``STATUS_REFRESH``."""
    monkeypatch.setattr(runner_module, "STATUS_REFRESH", 60.0)
    store = CountingStore(tmp_path / "t.db")
    runner = idle_runner(provider, tmp_path, ["a", "b"], store)
    loop = asyncio.get_running_loop()
    saves: list[tuple[float, str, str]] = []  # (time, stream, state) of each save that worked
    failed: list[float] = []
    real = store.put_statuses

    async def put_statuses(statuses: Mapping[str, dict[str, Any]]) -> None:
        live = all(st["state"] == "live" for st in statuses.values())
        if live and not failed:  # the first save of live statuses fails, once
            failed.append(loop.time())
            raise StoreError("the store is down")
        await real(statuses)
        saves.extend((loop.time(), n, st["state"]) for n, st in statuses.items())

    store.put_statuses = put_statuses  # type: ignore[method-assign]
    await run_until(runner, lambda: any(state == "live" for _, _, state in saves))
    retried = [(t, n) for t, n, state in saves if state == "live"]
    assert failed and sorted(n for _, n in retried) == ["a", "b"]
    assert all(t - failed[0] < 1.0 for t, _ in retried)  # the next rounds, not 60 s later
