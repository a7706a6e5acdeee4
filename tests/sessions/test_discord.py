"""discord-gateway against the Discord emulator: op 7, zombies, resumes, kills, refusals."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.config import Config, ConfigError, parse_config
from longline.engine.runner import Runner
from longline.stores import open_store
from longline.testing.discord import TOKEN, DiscordEmulator
from tests.conftest import make_config, wait_until
from tests.sessions.test_slack import preset_provider, run_until, start_run


def discord_stream(dc: DiscordEmulator, name: str = "discord", **session: Any) -> dict[str, Any]:
    return {
        "name": name,
        "transport": "ws",
        "session": {
            "preset": "discord-gateway",
            "token": TOKEN,
            "intents": 513,
            "api_url": dc.api_url,
            **session,
        },
    }


def fault_midway(
    dc: DiscordEmulator, total: int, fault: Callable[[], object]
) -> Callable[[Runner], bool]:
    """``run_until``'s condition: ``fault()`` once, after 100 events were produced; done once
    the feed ended and all ``total`` events are stored."""
    fired = False

    def done(r: Runner) -> bool:
        nonlocal fired
        if not fired and dc.produced > 100:
            fault()
            fired = True
        return dc.done and r.stats["discord"].events >= total

    return done


async def stored_numbers(cfg: Config, stream: str) -> list[int]:
    store = open_store(cfg.store)
    await store.open()
    try:
        events = await store.read(stream, 0, 100_000)
    finally:
        await store.close()
    assert all(e.event == "MESSAGE_CREATE" for e in events)
    return [orjson.loads(e.payload)["n"] for e in events]


async def test_ten_op7_reconnects_resume_without_loss(tmp_path: Path) -> None:
    """Reconnect (op 7) every 0.4 s: each successor resumes, the old connection closes once
    RESUMED arrived, nothing is lost, and every heartbeat carries the last sequence."""
    total = 600
    async with DiscordEmulator(
        total=total, rate=100, heartbeat_interval=500, reconnect_every=0.4
    ) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        runner = await run_until(
            cfg, lambda r: dc.done and r.stats["discord"].events >= total, timeout=40
        )
        assert dc.stats.reconnects_sent >= 10
        assert runner.stats["discord"].rotations >= 10
        assert dc.stats.identifies == 1  # one session all along: every reconnect resumed
        assert dc.stats.resumes >= 10
        assert (dc.stats.resumes_elsewhere, dc.stats.invalid_sessions) == (0, 0)
        assert dc.stats.late_heartbeats == 0
        assert dc.stats.heartbeats > 0 and dc.stats.stale_heartbeats == 0
    numbers = await stored_numbers(cfg, "discord")
    assert sorted(numbers) == list(range(1, total + 1))


async def test_a_zombie_connection_is_noticed_and_resumed_without_loss(tmp_path: Path) -> None:
    """No heartbeat ACK since the previous heartbeat: the client closes the connection
    (resumable) and resumes on a new one, which replays what the zombie did not deliver."""
    total = 300
    async with DiscordEmulator(total=total, rate=100, heartbeat_interval=300) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        # The open connection stops ACKing; later ones ACK again.
        runner = await run_until(cfg, fault_midway(dc, total, dc.zombie), timeout=30)
        causes = runner.stats["discord"].reconnect_causes or {}
        assert causes.get("stall", 0) >= 1
        assert dc.stats.resumes >= 1
        assert dc.stats.identifies == 1
        assert (dc.stats.invalid_sessions, dc.stats.resumes_elsewhere) == (0, 0)
        assert dc.stats.stale_heartbeats == 0
    numbers = await stored_numbers(cfg, "discord")
    assert sorted(numbers) == list(range(1, total + 1))


async def test_a_dropped_connection_resumes_on_the_resume_gateway_url(tmp_path: Path) -> None:
    total = 300
    async with DiscordEmulator(total=total, rate=100, heartbeat_interval=500) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        # A reset without a close frame.
        await run_until(cfg, fault_midway(dc, total, dc.kill), timeout=30)
        assert dc.stats.paths.get("/gateway") == 1  # only the first connection: Identify
        assert dc.stats.paths.get("/resume-gateway", 0) >= 1
        assert dc.stats.resumes >= 1 and dc.stats.resumes_elsewhere == 0
        assert dc.stats.identifies == 1
    numbers = await stored_numbers(cfg, "discord")
    assert sorted(numbers) == list(range(1, total + 1))


async def test_a_heartbeat_request_is_answered_at_once(tmp_path: Path) -> None:
    """A 60 s interval: the client's own heartbeats are far apart, so each of three op 1
    requests answered within seconds was answered because it was asked."""
    async with DiscordEmulator(total=50, rate=200, heartbeat_interval=60_000) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        try:
            await wait_until(lambda: dc.done, 10)
            for n in range(1, 4):
                await dc.request_heartbeat()
                await wait_until(lambda n=n: dc.stats.requested_heartbeats >= n, 5)
        finally:
            runner.stop()
            await task
        assert dc.stats.heartbeat_requests == 3
        assert dc.stats.stale_heartbeats == 0
        assert dc.stats.connections == 1


async def test_invalid_session_resumable_resumes_without_identifying(tmp_path: Path) -> None:
    total = 300
    async with DiscordEmulator(total=total, rate=100, heartbeat_interval=500) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        sent = False

        def done(r: Runner) -> bool:
            nonlocal sent
            if not sent and dc.produced > 100:
                asyncio.get_running_loop().create_task(dc.invalidate(resumable=True))
                sent = True
            return dc.done and r.stats["discord"].events >= total

        runner = await run_until(cfg, done, timeout=30)
        assert sent
        assert dc.stats.resumes >= 1
        assert dc.stats.identifies == 1  # op 9 true: resumed, no second Identify
        assert len(dc.sessions) == 1
        assert runner.stats["discord"].rotations >= 1  # make-before-break to the successor
        assert (dc.stats.invalid_sessions, dc.stats.resumes_elsewhere) == (0, 0)
    numbers = await stored_numbers(cfg, "discord")
    assert sorted(numbers) == list(range(1, total + 1))


async def test_sigkill_and_restart_resume_from_the_committed_sequence(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    total = 1200
    async with DiscordEmulator(
        total=total, rate=150, heartbeat_interval=500, reconnect_every=0.3
    ) as dc:
        s = discord_stream(dc)
        data = {
            "store": f"sqlite:///{db}",
            "streams": [s],
            "writer": {"batch_max": 500, "batch_window": "200ms"},
        }
        cfg_file = tmp_path / "k.yaml"
        cfg_file.write_text(yaml.safe_dump(data))
        for round_ in range(3):
            proc = await start_run(cfg_file)
            while dc.produced < 150 * (round_ + 1):
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        proc = await start_run(cfg_file)
        cfg = make_config(db, s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while loop.time() < deadline:
            await asyncio.sleep(0.3)
            if dc.done and len(await stored_numbers(cfg, "discord")) >= total:
                break
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert dc.stats.identifies == 1  # the restarts resumed the session from the store
        assert dc.stats.replayed > 0
        assert dc.stats.reconnects_sent >= 10
    numbers = await stored_numbers(cfg, "discord")
    assert sorted(numbers) == list(range(1, total + 1))


async def test_bad_token_stops_only_that_stream(tmp_path: Path) -> None:
    async with DiscordEmulator(total=50, rate=200) as dc:
        cfg = make_config(
            tmp_path / "d.db", discord_stream(dc), discord_stream(dc, "bad", token="wrong")
        )
        runner = await run_until(
            cfg,
            lambda r: (
                "bad" in r.stats
                and r.stats["discord"].events >= 50
                and r.stats["bad"].state == "failed"
            ),
            timeout=30,
        )
        assert runner.stats["bad"].state == "failed"
        assert (runner.stats["bad"].reason or "").startswith("HTTP 401 Unauthorized")
        assert dc.stats.refused_gateway_bot == 3
    assert sorted(await stored_numbers(cfg, "discord")) == list(range(1, 51))


async def test_disallowed_intents_close_4014_stops_at_once(tmp_path: Path) -> None:
    async with DiscordEmulator(total=10, rate=200) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc, intents=1 << 8))
        runner = Runner(cfg, status_interval=0.2)
        await asyncio.wait_for(runner.run(), 10)  # the only stream failed: the run ends
        assert runner.stats["discord"].state == "failed"
        assert runner.stats["discord"].reason == (
            "refused: Discord closed with 4014 (disallowed intents)"
        )
        assert dc.stats.identifies == 1


async def test_invalid_session_not_resumable_identifies_anew(tmp_path: Path) -> None:
    async with DiscordEmulator(total=100, rate=100, heartbeat_interval=500) as dc:
        cfg = make_config(tmp_path / "d.db", discord_stream(dc))
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        while dc.produced < 30:
            await asyncio.sleep(0.02)
        await dc.invalidate(resumable=False)
        while dc.produced < dc.total:  # what the old session missed is lost at Discord
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        runner.stop()
        await task
        assert dc.stats.identifies == 2
        assert len(dc.sessions) == 2
    numbers = await stored_numbers(cfg, "discord")
    assert len(numbers) == len(set(numbers))  # the new session's events are not doubled
    assert max(numbers) == 100


def test_discord_options_are_checked() -> None:
    def errors(session: dict[str, Any], **stream: Any) -> list[str]:
        s = {"name": "d", "transport": "ws", "session": session, **stream}
        with pytest.raises(ConfigError) as info:
            parse_config({"streams": [s]}, env={})
        return info.value.errors

    assert errors({"preset": "discord-gateway", "token": "t"}) == [
        "streams[0].session.intents: required"
    ]
    assert errors({"preset": "discord-gateway", "token": "t", "intents": -1}) == [
        "streams[0].session.intents: must be >= 0"
    ]


async def test_longline_provider_preset_discord_serves_the_emulator(tmp_path: Path) -> None:
    async with preset_provider("discord") as second:
        session = yaml.safe_load(second.split("session: ", 1)[1])
        s = {"name": "discord", "transport": "ws", "session": session}
        cfg = make_config(tmp_path / "p.db", s)
        await run_until(cfg, lambda r: "discord" in r.stats and r.stats["discord"].events >= 50, 20)
        assert sorted(await stored_numbers(cfg, "discord")) == list(range(1, 51))
