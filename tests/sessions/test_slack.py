"""slack-socket-mode against the Slack emulator: refreshes, kills, acks after commit, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.config import Config
from longline.engine.runner import Runner
from longline.stores import open_store
from longline.testing.slack import APP_TOKEN, SlackEmulator, event_id, event_payload
from tests.conftest import make_config, wait_until


def slack_stream(slack: SlackEmulator, name: str = "slack", **extra: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "name": name,
        "transport": "ws",
        "session": {
            "preset": "slack-socket-mode",
            "app_token": APP_TOKEN,
            "api_url": slack.api_url,
        },
    }
    s.update(extra)
    return s


class CommitCheck:
    """The emulator's ``on_ack``: the acknowledged event must already be in the store."""

    def __init__(self, db: Path, stream: str) -> None:
        self.db, self.stream = db, stream
        self.early: list[int] = []
        self.checked = 0

    def __call__(self, n: int) -> None:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT 1 FROM events WHERE stream = ? AND key = ?", (self.stream, event_id(n))
            ).fetchone()
        finally:
            con.close()
        self.checked += 1
        if row is None:
            self.early.append(n)


async def stored_slack(cfg: Config, stream: str) -> list[tuple[str, str, str | None]]:
    """(key, payload, event type) of every stored event, in seq order."""
    store = open_store(cfg.store)
    await store.open()
    try:
        return [(e.key, e.payload, e.event) for e in await store.read(stream, 0, 100_000)]
    finally:
        await store.close()


def expect(total: int) -> list[tuple[str, str, str | None]]:
    return [
        (event_id(n), orjson.dumps(event_payload(n)).decode(), "events_api")
        for n in range(1, total + 1)
    ]


async def run_until(cfg: Config, done: Any, timeout: float = 40.0) -> Runner:
    runner = Runner(cfg, status_interval=0.2)
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done(runner) and loop.time() < deadline and not task.done():
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await task
    return runner


async def test_ten_refreshes_lose_nothing_double_nothing_and_ack_after_commit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    check = CommitCheck(db, "slack")
    total = 600
    async with SlackEmulator(
        total=total, rate=120, refresh_every=0.4, disconnect_grace=1.0, on_ack=check
    ) as slack:
        cfg = make_config(
            db, slack_stream(slack), writer={"batch_max": 500, "batch_window": "50ms"}
        )
        runner = await run_until(cfg, lambda r: slack.done)
        assert slack.stats.disconnects_sent >= 10
        assert runner.stats["slack"].rotations >= 10
        assert slack.stats.lost == []
        assert slack.stats.acked == set(range(1, total + 1))
        # make-before-break: every envelope was acknowledged on its connection, none redelivered
        assert slack.stats.redeliveries == 0
        assert slack.stats.unknown_acks == 0
    assert check.checked == total and check.early == []
    assert sorted(await stored_slack(cfg, "slack")) == expect(total)


async def test_a_replaced_connection_sends_the_acks_it_owes_before_it_closes(
    tmp_path: Path,
) -> None:
    """Slack keeps delivering on a connection it warned, and commits linger 400 ms (a tenth
    of batch_window): at every switch the old connection owes acks for events being
    committed. It commits and sends them before it closes, so Slack redelivers only what
    arrived in the last moment."""
    db = tmp_path / "s.db"
    check = CommitCheck(db, "slack")
    total = 400
    async with SlackEmulator(
        total=total,
        rate=100,
        refresh_every=0.5,
        disconnect_grace=3.0,
        deliver_while_leaving=True,
        on_ack=check,
    ) as slack:
        cfg = make_config(db, slack_stream(slack), writer={"batch_max": 5000, "batch_window": "4s"})
        runner = await run_until(cfg, lambda r: slack.done)
        rotations = runner.stats["slack"].rotations
        assert rotations >= 5
        assert (slack.stats.lost, slack.stats.unknown_acks) == ([], 0)
        # Only envelopes that arrived after the last commit of a connection are redelivered;
        # without that commit and its acks, dozens are, and some end up given up on.
        assert slack.stats.redeliveries <= rotations
    assert check.early == []
    assert sorted(await stored_slack(cfg, "slack")) == expect(total)


async def test_redelivery_of_an_unacknowledged_envelope_is_stored_once(tmp_path: Path) -> None:
    """Connections reset without a close frame: envelopes in flight are never acknowledged,
    Slack redelivers them in new envelopes, the event_id key keeps one copy."""
    db = tmp_path / "s.db"
    total = 300
    async with SlackEmulator(total=total, rate=150, ack_timeout=1.0) as slack:
        cfg = make_config(
            db, slack_stream(slack), writer={"batch_max": 500, "batch_window": "300ms"}
        )
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        for _ in range(4):
            await asyncio.sleep(0.4)
            slack.kill()  # acks for what is buffered (300 ms linger) never reach Slack
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not slack.done and loop.time() < deadline:
            await asyncio.sleep(0.05)
        runner.stop()
        await task
        assert slack.stats.lost == []
        assert slack.stats.redeliveries > 0
        assert runner.stats["slack"].duplicates > 0
    assert sorted(await stored_slack(cfg, "slack")) == expect(total)


@contextlib.asynccontextmanager
async def preset_provider(preset: str) -> AsyncIterator[str]:
    """``longline provider --preset PRESET`` (50 events) in its own process; yields the line
    that says how to configure the session, and checks it exits 0 on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "provider", "--preset", preset, "--port", "0",
        "--total", "50", "--rate", "500",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        second = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert first.startswith(f"longline provider ({preset}) listening on http://127.0.0.1:")
        yield second
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def start_run(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "--log-level", "ERROR", "run", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_sigkill_and_restart_store_the_exact_set(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    check = CommitCheck(db, "slack")
    total = 900
    async with SlackEmulator(
        total=total, rate=150, ack_timeout=1.0, refresh_every=0.25, on_ack=check
    ) as slack:
        s = slack_stream(slack, backoff={"initial": "50ms", "max": "500ms"})
        data = {
            "store": f"sqlite:///{db}",
            "streams": [s],
            "writer": {"batch_max": 500, "batch_window": "100ms"},
        }
        cfg_file = tmp_path / "k.yaml"
        cfg_file.write_text(yaml.safe_dump(data))
        for round_ in range(3):
            proc = await start_run(cfg_file)
            while slack.stats.acks <= 40 * (round_ + 1) and proc.returncode is None:
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        proc = await start_run(cfg_file)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        # Refreshes come every 0.25 s of a connection's life: on a loaded machine, the feed can
        # end before the tenth, so wait for both.
        while (not slack.done or slack.stats.disconnects_sent < 10) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # installed its signal handlers long ago; flush on SIGTERM
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert slack.stats.lost == []
        assert slack.stats.acked == set(range(1, total + 1))
        assert slack.stats.redeliveries > 0  # the killed processes left envelopes unacked
        assert slack.stats.disconnects_sent >= 10
    assert check.early == []
    assert sorted(await stored_slack(make_config(db, s), "slack")) == expect(total)


async def test_invalid_token_stops_only_that_stream(tmp_path: Path) -> None:
    total = 100
    async with SlackEmulator(total=total, rate=200) as slack:
        bad = slack_stream(slack, "bad")
        bad["session"] = {**bad["session"], "app_token": "xapp-1-wrong"}
        cfg = make_config(tmp_path / "s.db", slack_stream(slack), bad)
        runner = await run_until(cfg, lambda r: slack.done and r.stats["bad"].state == "failed")
        assert runner.stats["bad"].state == "failed"
        assert runner.stats["bad"].reason == (
            "refused: apps.connections.open: invalid_auth (3 attempts)"
        )
        assert runner.stats["slack"].state == "stopped"
        assert slack.stats.refused_opens == 3  # three refusals, then it stopped asking
    assert sorted(await stored_slack(cfg, "slack")) == expect(total)
    assert await stored_slack(cfg, "bad") == []


async def test_rate_limited_open_waits_retry_after(tmp_path: Path) -> None:
    async with SlackEmulator(total=20, rate=200, rate_limited=2, retry_after=1) as slack:
        cfg = make_config(tmp_path / "s.db", slack_stream(slack))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await run_until(cfg, lambda r: slack.done)
        assert loop.time() - started >= 2.0  # two 429s with Retry-After: 1
        assert slack.stats.refused_opens == 2
    assert sorted(await stored_slack(cfg, "slack")) == expect(20)


async def test_link_disabled_stops_the_stream(tmp_path: Path) -> None:
    async with SlackEmulator(total=10, rate=200) as slack:
        cfg = make_config(tmp_path / "s.db", slack_stream(slack))
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        while not slack.done:
            await asyncio.sleep(0.05)
        await slack.disable_link()
        await asyncio.wait_for(task, 10)  # the only stream failed: the run ends by itself
        assert runner.stats["slack"].state == "failed"
        assert "link_disabled" in (runner.stats["slack"].reason or "")
        assert slack.stats.opens == 1


async def test_redundant_connections_store_each_event_once(tmp_path: Path) -> None:
    total = 300
    async with SlackEmulator(total=total, rate=200, refresh_every=0.6) as slack:
        cfg = make_config(tmp_path / "s.db", slack_stream(slack, redundancy=3))
        runner = await run_until(cfg, lambda r: slack.done)
        assert slack.stats.connections >= 3
        assert slack.stats.redeliveries == 0
        assert runner.stats["slack"].events == total
    assert sorted(await stored_slack(cfg, "slack")) == expect(total)


async def test_longline_provider_preset_slack_serves_the_emulator(tmp_path: Path) -> None:
    async with preset_provider("slack") as second:
        api_url = second.split("api_url: ")[1].split(",")[0]
        assert f"app_token: {APP_TOKEN}" in second
        s = {
            "name": "slack",
            "transport": "ws",
            "session": {"preset": "slack-socket-mode", "app_token": APP_TOKEN, "api_url": api_url},
        }
        cfg = make_config(tmp_path / "p.db", s)
        await run_until(cfg, lambda r: "slack" in r.stats and r.stats["slack"].events >= 50, 20)
        assert sorted(await stored_slack(cfg, "slack")) == expect(50)


async def test_python_api_stream_with_the_slack_preset(tmp_path: Path) -> None:
    import longline

    total = 120
    async with SlackEmulator(total=total, rate=300, refresh_every=0.3) as slack:
        app = longline.App(store=f"sqlite:///{tmp_path / 'a.db'}")
        session = {"preset": "slack-socket-mode", "app_token": APP_TOKEN, "api_url": slack.api_url}
        app.stream("slack", transport="ws", url="", session=session)
        got: list[longline.Event] = []

        @app.processor
        async def collect(events: list[longline.Event]) -> None:
            got.extend(events)

        async with app.running():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(got) < total and loop.time() < deadline:
                await asyncio.sleep(0.05)
        assert slack.stats.lost == [] and slack.stats.disconnects_sent >= 1
    assert sorted(e.key for e in got) == [event_id(n) for n in range(1, total + 1)]
    assert {e.event_type for e in got} == {"events_api"}


async def test_a_slash_command_is_keyed_by_its_envelope_and_a_warning_rotates(
    tmp_path: Path,
) -> None:
    """A ``slash_commands`` envelope has no ``event_id``: it is stored under its
    ``envelope_id`` and acknowledged. ``disconnect`` with reason ``warning`` is handled like
    ``refresh_requested``: the successor says hello while the warned connection is still open
    (make-before-break), then the warned one is closed by longline, nothing lost."""
    db = tmp_path / "s.db"
    total = 200
    async with SlackEmulator(total=total, rate=100, disconnect_grace=3.0) as slack:
        cfg = make_config(db, slack_stream(slack))
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        warn: asyncio.Task[None] | None = None
        try:
            await wait_until(lambda: len(slack.stats.acked) >= 30, 10)
            commands = [await slack.slash_command(f"deploy {n}") for n in range(2)]
            await wait_until(lambda: len(slack.stats.other_acked) == 2, 10)
            warn = asyncio.create_task(slack.refresh_all("warning"))
            await wait_until(lambda: slack.done and runner.stats["slack"].rotations >= 1, 15)
        finally:
            runner.stop()
            await task
            if warn is not None:
                warn.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warn
        assert sorted(slack.stats.other_acked) == sorted(e for e, _ in commands)
        assert slack.stats.disconnects_sent == 1
        assert slack.stats.hellos == [1, 2]  # the successor opened before the old one closed
        assert runner.stats["slack"].rotations == 1
        assert runner.stats["slack"].reconnect_causes is None  # not a drop: a rotation
        assert (slack.stats.lost, slack.stats.redeliveries, slack.stats.unknown_acks) == ([], 0, 0)
    slash = [(e, orjson.dumps(p).decode(), "slash_commands") for e, p in commands]
    assert sorted(await stored_slack(cfg, "slack")) == sorted(expect(total) + slash)
