"""A bounded stop through the Python API: a store that crawls (a real SQLite store whose
commits take 250 ms each, ~80 events/s, as a slow remote store does) or a PostgreSQL table held
locked by another connection. ``Runner.run`` returns within duration + shutdown_timeout +
CLOSE_GRACE, counts what it could not commit, and leaves the checkpoint where the stored events
end; the next run with a healthy store stores the rest with no gap."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longline.config import Config, parse_config
from longline.core.model import AppendResult, Event
from longline.engine.outcome import exit_code, final_line
from longline.engine.runner import CLOSE_GRACE, Runner
from longline.stores import open_store
from longline.stores.sqlite import SQLiteStore
from longline.testing.provider import Provider
from tests.conftest import capture_until, stored

TOTAL = 2000
DURATION = 1.5
SHUTDOWN_TIMEOUT = 1.0
BOUND = DURATION + SHUTDOWN_TIMEOUT + CLOSE_GRACE + 1.0  # + slack for a loaded machine


class CrawlingStore(SQLiteStore):
    """SQLite whose every append first waits ``DELAY``: real commits, at a crawl."""

    DELAY = 0.25

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
    ) -> AppendResult:
        await asyncio.sleep(self.DELAY)
        return await super().append(stream, events, checkpoint, epoch)


def config(store: str, provider: Provider, feed: str) -> Config:
    return parse_config({
        "store": store,
        "shutdown_timeout": f"{SHUTDOWN_TIMEOUT}s",
        "writer": {"batch_max": 20, "batch_window": "10ms"},
        "streams": [{
            "name": "c", "transport": "lines", "key": "$.id", "cursor": "$.id",
            "resume": {"query": "since"}, "stall_timeout": "5s",
            "backoff": {"initial": "50ms", "max": "500ms"},
            "url": provider.url("lines", feed, total=TOTAL, since=0),
        }],
    })


async def timed_run(runner: Runner) -> tuple[float, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    stats = await asyncio.wait_for(runner.run(duration=DURATION), BOUND + 30)
    return loop.time() - started, dict(stats)


async def check_stopped_short(cfg: Config, stats: dict[str, Any], elapsed: float) -> int:
    """The run stopped in time with items left, none of them stored or checkpointed; returns
    how many events are stored (1..k)."""
    assert elapsed < BOUND, elapsed
    st = stats["c"]
    assert st.state == "stopped" and st.uncommitted > 0
    assert st.reason.startswith(f"{st.uncommitted} items not committed within shutdown_timeout")
    assert exit_code(stats) == 1
    assert final_line(stats) is not None and f"c={st.uncommitted} items" in str(final_line(stats))
    ids = [i for i, _, _ in await stored(cfg, "c")]
    assert ids == list(range(1, len(ids) + 1)) and ids
    store = open_store(cfg.store)
    await store.open()
    try:
        assert await store.checkpoint("c") == str(ids[-1])
    finally:
        await store.close()
    return len(ids)


async def check_rerun_fills_the_gap(cfg: Config, already: int) -> None:
    def all_in(r: Runner) -> bool:
        return r.stats["c"].events >= TOTAL - already

    runner = await capture_until(cfg, all_in)
    assert exit_code(runner.stats) == 0
    assert [i for i, _, _ in await stored(cfg, "c")] == list(range(1, TOTAL + 1))


async def test_a_crawling_store_stops_within_shutdown_timeout(
    provider: Provider, tmp_path: Path
) -> None:
    db = tmp_path / "crawl.db"
    cfg = config(f"sqlite:///{db}", provider, "crawl")
    elapsed, stats = await timed_run(Runner(cfg, store=CrawlingStore(db), status_interval=0.2))
    # Commits went on at their pace until the deadline: about DURATION + SHUTDOWN_TIMEOUT of them.
    stored_n = await check_stopped_short(cfg, stats, elapsed)
    assert stats["c"].events == stored_n
    assert stored_n + stats["c"].uncommitted <= provider.stats["crawl"].events_sent
    await check_rerun_fills_the_gap(cfg, stored_n)


async def test_a_locked_postgres_table_stops_within_shutdown_timeout(
    provider: Provider, pg_url: str
) -> None:
    import asyncpg

    cfg = config(pg_url, provider, "pglock")
    runner = Runner(cfg, status_interval=0.2)
    task = asyncio.create_task(timed_run(runner))
    while "c" not in runner.stats or runner.stats["c"].events < 20:
        assert not task.done()
        await asyncio.sleep(0.02)
    dsn, schema = pg_url.split("?schema=")
    holder = await asyncpg.connect(dsn)
    try:
        locking = holder.transaction()
        await locking.start()
        await holder.execute(f"LOCK TABLE {schema}.events IN ACCESS EXCLUSIVE MODE")
        elapsed, stats = await task
        await asyncio.sleep(1.0)  # released late: the run is long gone by then
        await locking.rollback()
    finally:
        await holder.close()
    stored_n = await check_stopped_short(cfg, stats, elapsed)
    await check_rerun_fills_the_gap(cfg, stored_n)
