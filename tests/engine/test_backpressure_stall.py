"""A store that stops committing for longer than ``stall_timeout`` makes the connections stop
reading (backpressure); that pause is ours, not the provider's: no stall is declared, no
connection is cut, and a live-only feed loses nothing that was sent while it was connected."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from longline.config import parse_config
from longline.core.model import AppendResult, Event
from longline.engine.runner import Runner
from longline.stores.sqlite.store import SQLiteStore
from longline.testing.provider import Provider
from tests.conftest import stored

TOTAL = 3000


class PausedStore(SQLiteStore):
    """SQLite whose appends wait until ``resume`` is set: a store down for a while."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resume = asyncio.Event()

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
    ) -> AppendResult:
        await self.resume.wait()
        return await super().append(stream, events, checkpoint, epoch)


@pytest.mark.parametrize("transport", ["lines", "sse", "ws"])
async def test_a_paused_store_is_no_stall_and_a_live_feed_loses_nothing(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    db = tmp_path / "p.db"
    cfg = parse_config({
        "store": f"sqlite:///{db}",
        "writer": {"batch_max": 20, "batch_window": "10ms"},  # backlogged at 160 pending
        "streams": [{
            "name": "live", "transport": transport, "key": "$.id",
            "stall_timeout": "300ms", "ping_interval": "100ms",
            # Live only: no resume, so what a cut connection held is gone for good.
            "url": provider.url(transport, "paused", total=TOTAL, rate=3000),
        }],
    })  # fmt: skip
    store = PausedStore(db)
    runner = Runner(cfg, store=store, status_interval=0.2)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(1.5)  # five stall timeouts with the store down and the feed running
        store.resume.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while runner.stats["live"].events < TOTAL and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await task
    st = runner.stats["live"]
    assert st.reconnects == 0, st.reconnect_causes
    assert [r[0] for r in await stored(cfg, "live")] == list(range(1, TOTAL + 1))
