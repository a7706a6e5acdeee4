"""Live-only feeds: make-before-break rotation and redundancy must open no gap."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from longline.testing.provider import Provider
from tests.conftest import capture_until, make_config, stored


def live_ws(provider: Provider, feed: str, **params: object) -> dict[str, object]:
    return {
        "name": feed,
        "transport": "ws",
        "key": "$.id",
        "url": provider.url("ws", feed, rate=300, resumable=0, **params),
    }


async def test_rotation_before_forced_close_loses_nothing(
    provider: Provider, tmp_path: Path
) -> None:
    s = live_ws(provider, "rot", lifetime=1.5)
    s["max_lifetime"] = "800ms"
    cfg = make_config(tmp_path / "t.db", s)
    loop = asyncio.get_running_loop()
    t_end = loop.time() + 6.0
    runner = await capture_until(cfg, lambda r: loop.time() > t_end)
    ids = [r[0] for r in await stored(cfg, "rot")]
    assert len(ids) > 1000
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, each once
    assert runner.stats["rot"].rotations >= 5
    assert runner.stats["rot"].duplicates > 0  # the overlap really overlapped


async def test_without_rotation_the_same_feed_has_gaps(provider: Provider, tmp_path: Path) -> None:
    """Control: the provider's forced close does open gaps when longline does not rotate."""
    cfg = make_config(tmp_path / "t.db", live_ws(provider, "norot", lifetime=1.0))
    loop = asyncio.get_running_loop()
    t_end = loop.time() + 4.0
    await capture_until(cfg, lambda r: loop.time() > t_end)
    ids = [r[0] for r in await stored(cfg, "norot")]
    assert len(set(ids)) == len(ids)
    assert ids[-1] - ids[0] + 1 > len(ids)  # something was missed


async def test_redundant_connections_store_each_event_once(
    provider: Provider, tmp_path: Path
) -> None:
    s = live_ws(provider, "red")
    s["redundancy"] = 3
    cfg = make_config(tmp_path / "t.db", s)
    loop = asyncio.get_running_loop()
    t_end = loop.time() + 3.0
    runner = await capture_until(cfg, lambda r: loop.time() > t_end)
    ids = [r[0] for r in await stored(cfg, "red")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    st = runner.stats["red"]
    assert provider.stats["red"].connections == 3
    # Each event arrived three times: two of the three copies were dropped by the key.
    assert st.duplicates >= 2 * len(ids) - 2 * 300


def _hold_exclusive_lock(db: Path, seconds: float) -> None:
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_rotation_goes_on_while_the_store_is_locked(
    provider: Provider, tmp_path: Path
) -> None:
    """Found by the reliability campaign: a successor waited for the writer to commit (a flush
    to read the checkpoint) before connecting, though a live-only stream sends no cursor. With
    SQLite locked by another process for 3 s no successor opened, the provider's forced close
    came, and what it published meanwhile was lost."""
    s = live_ws(provider, "rotlock", lifetime=1.5)
    s["max_lifetime"] = "800ms"
    db = tmp_path / "t.db"
    cfg = make_config(db, s)
    loop = asyncio.get_running_loop()
    t_end = loop.time() + 7.0

    async def lock_later() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(_hold_exclusive_lock, db, 3.0)

    locker = asyncio.create_task(lock_later())
    runner = await capture_until(cfg, lambda r: loop.time() > t_end)
    await locker
    ids = [r[0] for r in await stored(cfg, "rotlock")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, each once
    assert len(ids) > 1500
    # While locked, a successor's events cannot commit, so the forced close hands over to it.
    assert runner.stats["rotlock"].rotations >= 3
    assert runner.stats["rotlock"].reconnects == 0
