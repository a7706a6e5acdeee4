"""twitch-eventsub against the Twitch emulator: reconnects, redeliveries, refusals, kills."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.config import Config, ConfigError, parse_config
from longline.engine.runner import Runner
from longline.stores import open_store
from longline.testing.twitch import CLIENT_ID, TOKEN, TwitchEmulator
from tests.conftest import make_config
from tests.sessions.test_slack import preset_provider, run_until, start_run

SUBS = [{"type": "channel.chat.message", "version": "1", "condition": {"user_id": "1"}}]


def twitch_stream(twitch: TwitchEmulator, name: str = "twitch", **session: Any) -> dict[str, Any]:
    return {
        "name": name,
        "transport": "ws",
        "session": {
            "preset": "twitch-eventsub",
            "client_id": CLIENT_ID,
            "token": TOKEN,
            "url": twitch.ws_url,
            "api_url": twitch.api_url,
            "subscriptions": SUBS,
            **session,
        },
    }


async def stored_numbers(cfg: Config, stream: str) -> list[int]:
    """Event numbers of the stored notifications, in seq order (keys checked unique)."""
    store = open_store(cfg.store)
    await store.open()
    try:
        events = await store.read(stream, 0, 100_000)
    finally:
        await store.close()
    assert len({e.key for e in events}) == len(events)
    assert all(e.event == "channel.chat.message" for e in events)
    return [orjson.loads(e.payload)["event"]["n"] for e in events]


async def test_ten_reconnects_and_redeliveries_store_each_event_once(tmp_path: Path) -> None:
    total = 600
    async with TwitchEmulator(total=total, rate=100, reconnect_every=0.4, duplicate_every=7) as tw:
        cfg = make_config(tmp_path / "t.db", twitch_stream(tw))
        runner = await run_until(cfg, lambda r: tw.done, timeout=40)
        await asyncio.sleep(0)
        assert tw.stats.reconnects_followed >= 10
        assert runner.stats["twitch"].rotations >= 10
        assert tw.stats.subscriptions_created == 1  # carried over: never re-subscribed
        assert tw.stats.subscribe_refusals == []
        assert tw.stats.inbound_violations == 0  # no client pings, no messages
        assert tw.stats.undelivered == []
        assert tw.stats.duplicates_sent > 0
        assert runner.stats["twitch"].duplicates >= tw.stats.duplicates_sent
    assert sorted(await stored_numbers(cfg, "twitch")) == list(range(1, total + 1))


async def test_refused_subscription_stops_only_that_stream(tmp_path: Path) -> None:
    async with TwitchEmulator(total=100, rate=200) as tw:
        cfg = make_config(
            tmp_path / "t.db", twitch_stream(tw), twitch_stream(tw, "bad", token="wrong")
        )
        runner = await run_until(
            cfg, lambda r: tw.done and r.stats["bad"].state == "failed", timeout=30
        )
        assert runner.stats["bad"].state == "failed"
        assert (runner.stats["bad"].reason or "").startswith("HTTP 401 Unauthorized")
        assert tw.stats.subscribe_refusals == [401, 401, 401]
        assert runner.stats["twitch"].state == "stopped"
    assert sorted(await stored_numbers(cfg, "twitch")) == list(range(1, 101))


async def test_revocation_is_shown_as_the_reason(tmp_path: Path) -> None:
    async with TwitchEmulator(total=20, rate=200) as tw:
        cfg = make_config(tmp_path / "t.db", twitch_stream(tw))
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        while not tw.done:
            await asyncio.sleep(0.05)
        await tw.revoke()
        await asyncio.sleep(0.3)
        assert runner.stats["twitch"].reason == (
            "Twitch revoked subscription channel.chat.message (authorization_revoked)"
        )
        runner.stop()
        await task


async def test_silence_past_the_keepalive_period_reconnects(tmp_path: Path) -> None:
    """The welcome's keepalive_timeout_seconds is the stall limit: an emulator that goes
    silent (stops keepalives) is dropped after it, not after stall_timeout."""
    async with TwitchEmulator(total=10, rate=200) as tw:
        s = twitch_stream(tw, keepalive_timeout_seconds=10)
        s["stall_timeout"] = "60s"
        cfg = make_config(tmp_path / "t.db", s)
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        while not tw.done:
            await asyncio.sleep(0.05)
        for link in list(tw.links):
            for t in link.tasks:
                t.cancel()  # no more keepalives: a silent connection
        loop = asyncio.get_running_loop()
        started = loop.time()
        while tw.stats.connections < 2 and loop.time() - started < 20:
            await asyncio.sleep(0.1)
        assert 10.0 <= loop.time() - started <= 13.0
        runner.stop()
        await task


def test_twitch_options_are_checked() -> None:
    def errors(session: dict[str, Any], **stream: Any) -> list[str]:
        s = {"name": "t", "transport": "ws", "session": session, **stream}
        with pytest.raises(ConfigError) as info:
            parse_config({"streams": [s]}, env={})
        return info.value.errors

    base = {"preset": "twitch-eventsub", "client_id": "c", "token": "t", "subscriptions": SUBS}
    assert errors({"preset": "twitch-eventsub", "client_id": "c", "token": "t"}) == [
        "streams[0].session.subscriptions: required"
    ]
    assert errors({**base, "keepalive_timeout_seconds": 5}) == [
        "streams[0].session.keepalive_timeout_seconds: must be >= 10"
    ]
    assert errors({**base, "subscriptions": [{"version": "1"}]}) == [
        "streams[0].session.subscriptions[0].type: required"
    ]
    assert errors(base, redundancy=2, max_lifetime="1h") == [
        "streams[0].redundancy: this provider allows at most 1 connections",
        "streams[0].max_lifetime: not with this session: it reconnects when asked to",
    ]


async def test_sigkill_and_restart_lose_only_what_twitch_cannot_replay(tmp_path: Path) -> None:
    """Twitch has no acknowledgement and no replay: what a killed process had received but
    not committed is gone at Twitch too. The restarted process stores everything sent to it,
    nothing is stored twice, and it subscribes afresh (a new session)."""
    db = tmp_path / "k.db"
    async with TwitchEmulator(total=900, rate=150, reconnect_every=0.5) as tw:
        s = twitch_stream(tw)
        data = {"store": f"sqlite:///{db}", "streams": [s]}
        cfg_file = tmp_path / "k.yaml"
        cfg_file.write_text(yaml.safe_dump(data))
        proc = await start_run(cfg_file)
        while tw.produced < 200:
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        before = set(tw.sessions)
        proc = await start_run(cfg_file)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # Reconnects come every 0.5 s of a connection's life: on a loaded machine, the feed
        # can end before the tenth, so wait for both.
        while (not tw.done or tw.stats.reconnects_followed < 10) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        after = [x for sid, x in tw.sessions.items() if sid not in before]
        assert len(after) == 1 and tw.stats.subscriptions_created == 2
        sent_after = set(after[0].sent)
        assert tw.stats.reconnects_followed >= 10
    numbers = await stored_numbers(make_config(db, s), "twitch")
    assert len(numbers) == len(set(numbers))  # nothing twice
    assert sent_after <= set(numbers)  # everything sent to the restarted process
    assert max(sent_after) == 900


async def test_longline_provider_preset_twitch_serves_the_emulator(tmp_path: Path) -> None:
    async with preset_provider("twitch") as second:
        session = yaml.safe_load(second.split("session: ", 1)[1])
        s = {"name": "twitch", "transport": "ws", "session": session}
        cfg = make_config(tmp_path / "p.db", s)
        await run_until(cfg, lambda r: "twitch" in r.stats and r.stats["twitch"].events >= 50, 20)
        assert sorted(await stored_numbers(cfg, "twitch")) == list(range(1, 51))
