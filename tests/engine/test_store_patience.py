"""A store that fails: an outage is waited out, a store failing past ``store_patience`` ends the
run (exit 1, one line) with nothing checkpointed past what was stored, and the next run on a
healthy store completes the feed exactly. A real SQLite store whose calls fail on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from longline.config import Config, parse_config
from longline.core.model import AppendResult, Event
from longline.engine.outcome import exit_code, final_line
from longline.engine.runner import Runner
from longline.stores import StoreError, open_store
from longline.stores.sqlite import SQLiteStore
from longline.testing.provider import Provider
from tests.conftest import stored

TOTAL = 3000


class BreakableStore(SQLiteStore):
    """SQLite whose appends fail once ``broken``, and whose first ``checkpoint_failures``
    checkpoint reads fail (a server still restarting)."""

    def __init__(self, path: str, *, permanent: bool = False) -> None:
        super().__init__(path)
        self.broken = False
        self.permanent = permanent
        self.checkpoint_failures = 0
        self.checkpoint_reads = 0

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        if self.broken:
            raise StoreError("connection refused", permanent=self.permanent)
        return await super().append(stream, events, checkpoint, epoch, reconnects=reconnects)

    async def checkpoint(self, stream: str) -> str | None:
        self.checkpoint_reads += 1
        if self.checkpoint_failures:
            self.checkpoint_failures -= 1
            raise StoreError("the database system is starting up")
        return await super().checkpoint(stream)


def config(db: Path, provider: Provider, feed: str, patience: str) -> Config:
    return parse_config({
        "store": f"sqlite:///{db}",
        "store_patience": patience,
        "shutdown_timeout": "1s",
        "writer": {"batch_max": 100, "batch_window": "10ms"},
        "streams": [{
            "name": "c", "transport": "lines", "key": "$.id", "cursor": "$.id",
            "resume": {"query": "since"}, "stall_timeout": "5s",
            "backoff": {"initial": "50ms", "max": "500ms"},
            "url": provider.url("lines", feed, total=TOTAL, rate=1000, since=0),
        }],
    })


async def break_after(store: BreakableStore, runner: Runner, seconds: float) -> None:
    await asyncio.sleep(seconds)
    store.broken = True


async def test_a_store_failing_past_its_patience_ends_the_run_and_nothing_is_lost(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "t.db", provider, "patience", "1s")
    store = BreakableStore(str(tmp_path / "t.db"))
    runner = Runner(cfg, store=store, status_interval=0.2)
    breaker = asyncio.create_task(break_after(store, runner, 1.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    stats = await asyncio.wait_for(runner.run(), 30)  # no duration: it ends by itself
    await breaker
    assert loop.time() - started < 1.0 + 1.0 + 10 + 1.0 + 5  # patience + last backoff + slack
    st = stats["c"]
    assert st.state == "failed" and st.uncommitted > 0
    assert st.reason.startswith("store writes failed for ")
    assert st.reason.endswith("(store_patience 1s), giving up: connection refused")
    assert runner.store_failure == st.reason
    assert exit_code(stats) == 1
    line = final_line(stats)
    assert line is not None and line.startswith(f"stream c failed: {st.reason}; not committed")
    ids = [i for i, _, _ in await stored(cfg, "c")]
    assert ids == list(range(1, len(ids) + 1)) and 0 < len(ids) < TOTAL
    async with open_store(cfg.store) as check:
        assert await check.checkpoint("c") == str(ids[-1])  # nothing past what was stored
    healthy = Runner(cfg, status_interval=0.2)
    task = asyncio.create_task(healthy.run())
    async with asyncio.timeout(30):
        while len(await stored(cfg, "c")) < TOTAL:
            await asyncio.sleep(0.2)
    healthy.stop()
    assert exit_code(await task) == 0
    assert [i for i, _, _ in await stored(cfg, "c")] == list(range(1, TOTAL + 1))


async def test_a_permanent_refusal_ends_the_run_at_once(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "t.db", provider, "permanent", "0")  # 0: no patience limit
    store = BreakableStore(str(tmp_path / "t.db"), permanent=True)
    runner = Runner(cfg, store=store, status_interval=0.2)
    breaker = asyncio.create_task(break_after(store, runner, 0.5))
    stats = await asyncio.wait_for(runner.run(), 30)
    await breaker
    assert stats["c"].state == "failed"
    assert stats["c"].reason == "store refused 3 times, giving up: connection refused"
    assert exit_code(stats) == 1


async def test_a_checkpoint_that_cannot_be_read_yet_is_read_again(
    provider: Provider, tmp_path: Path
) -> None:
    """Found by the reliability campaign: a stream that connected (or reconnected) while the
    store was restarting ended at once, its checkpoint read failing."""
    cfg = config(tmp_path / "t.db", provider, "ckpt", "5m")
    store = BreakableStore(str(tmp_path / "t.db"))
    store.checkpoint_failures = 3
    runner = Runner(cfg, store=store, status_interval=0.2)
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(30):
        while len(await stored(cfg, "c")) < TOTAL:
            await asyncio.sleep(0.2)
    assert runner.stats["c"].state == "live"
    runner.stop()
    stats = await task
    assert exit_code(stats) == 0 and store.checkpoint_reads == 4
    assert [i for i, _, _ in await stored(cfg, "c")] == list(range(1, TOTAL + 1))
