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


async def test_a_lagging_predecessor_is_closed_only_once_the_connections_overlap(
    provider: Provider, tmp_path: Path
) -> None:
    """A busy predecessor lags behind the provider (here: its bytes trickle through a proxy for
    the second before its rotation); the successor starts at the provider's present and
    commits at once. Closing the predecessor then would drop what is still in its socket: it
    must stay until the two overlap (a duplicate), and the stored ids stay contiguous."""
    from longline.testing.faultproxy import FaultProxy

    async with FaultProxy("127.0.0.1", provider.port) as proxy:
        s = live_ws(provider, "lag")
        s["url"] = proxy.url(str(s["url"]))
        s["max_lifetime"] = "2s"
        cfg = make_config(tmp_path / "t.db", s)
        loop = asyncio.get_running_loop()
        t_end = loop.time() + 5.0
        trickled = False

        def done(r: object) -> bool:
            nonlocal trickled
            conns = proxy.usable()
            if not trickled and len(conns) == 1 and loop.time() > t_end - 4.0:
                proxy.trickle(conns[0], 1.5)  # from 1 s before its rotation to 0.5 s after
                trickled = True
            return loop.time() > t_end

        runner = await capture_until(cfg, done)
    assert trickled
    ids = [r[0] for r in await stored(cfg, "lag")]
    # Contiguous and each once; not in id order: the predecessor's backlog is stored after the
    # successor's first events.
    assert sorted(ids) == list(range(min(ids), min(ids) + len(ids)))
    assert ids != sorted(ids)  # the predecessor really lagged
    assert runner.stats["lag"].rotations >= 1
