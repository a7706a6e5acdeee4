"""Live reload of a real ``longline run``: edit the YAML, send SIGHUP, and check with the local
provider's connection counts and the stored events that only what changed was touched.

``keep`` is live-only (no resume): a reconnect would lose what is sent meanwhile, so its single
connection and its gapless ids 1..k are the proof that an unchanged stream is left alone.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.testing.provider import Provider, event_bytes
from tests.conftest import make_config, stored

SLACK = 20.0  # seconds for anything the subprocess should do soon (a loaded machine)


def live(provider: Provider, name: str, feed: str, **params: object) -> dict[str, Any]:
    return {
        "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id", "resume": "none",
        "url": provider.url("lines", feed, **params),
    }  # fmt: skip


def resumable(provider: Provider, name: str, feed: str, **params: object) -> dict[str, Any]:
    return {
        "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id",
        "resume": {"query": "since"}, "url": provider.url("lines", feed, since=0, **params),
    }  # fmt: skip


def write(path: Path, db: Path, *streams: dict[str, Any], store: Path | None = None) -> None:
    path.write_text(yaml.safe_dump({
        "store": f"sqlite:///{store or db}",
        "shutdown_timeout": "5s",
        "writer": {"batch_window": "10ms"},
        "streams": [{"backoff": {"initial": "50ms", "max": "500ms"}, **s} for s in streams],
    }))  # fmt: skip


class Run:
    """A ``longline run`` subprocess whose stderr lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode().rstrip("\n"))

    async def wait_line(self, pred: Callable[[str], bool], after: int = 0) -> str:
        """The first line from index ``after`` on that matches, waiting up to SLACK seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLACK
        while loop.time() < deadline:
            for line in self.lines[after:]:
                if pred(line):
                    return line
            assert self.proc.returncode is None, "\n".join(self.lines)
            await asyncio.sleep(0.05)
        raise AssertionError("no such line in:\n" + "\n".join(self.lines))

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), SLACK)
        await self._reader
        return code


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runs: list[Run] = []

    async def go(*args: str) -> Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "longline", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        runs.append(Run(proc))
        return runs[-1]

    yield go
    for run in runs:
        if run.proc.returncode is None:
            run.proc.kill()
            await run.proc.wait()


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLACK
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def stored_ids(db: Path, stream: str) -> list[int]:
    cfg = make_config(db, {"name": stream, "transport": "lines", "url": "http://x/"})
    rows = await stored(cfg, stream)
    return [i for i, _, _ in rows]


def checkpoint(db: Path, stream: str) -> str | None:
    with sqlite3.connect(db, timeout=10) as conn:
        row = conn.execute("SELECT cursor FROM checkpoints WHERE stream = ?", (stream,)).fetchone()
    return None if row is None else str(row[0])


async def test_sighup_starts_stops_and_restarts_only_what_changed(
    provider: Provider, tmp_path: Path, start: Callable[..., Any]
) -> None:
    cfg, db = tmp_path / "c.yaml", tmp_path / "c.db"
    keep = live(provider, "keep", "f-keep", rate=100)
    write(cfg, db, keep, live(provider, "drop", "f-drop", rate=100),
          resumable(provider, "change", "f-change", rate=100))  # fmt: skip
    run = await start("run", str(cfg))
    await until(lambda: all(
        f in provider.stats and provider.stats[f].events_sent > 50
        for f in ("f-keep", "f-drop", "f-change")), "three streams flowing")  # fmt: skip
    feeds = provider.stats
    # Edit: drop removed, change gets another rate (so a new URL), add is new, keep is as was.
    write(cfg, db, keep, resumable(provider, "change", "f-change", rate=50),
          live(provider, "add", "f-add", rate=100))  # fmt: skip
    mark = len(run.lines)
    run.proc.send_signal(signal.SIGHUP)
    line = await run.wait_line(lambda ln: "reloaded:" in ln, mark)
    assert "1 stream(s) started (add)" in line
    assert "1 stream(s) stopped (drop)" in line
    assert "1 stream(s) restarted (change)" in line
    # The removed stream was flushed and checkpointed when it stopped, its connection closed.
    drop_sent = feeds["f-drop"].events_sent
    dropped = await stored_ids(db, "drop")
    assert dropped == list(range(1, len(dropped) + 1))
    assert checkpoint(db, "drop") == str(dropped[-1])
    assert len(dropped) <= drop_sent
    await until(lambda: provider.stats.get("f-add") is not None
                and provider.stats["f-add"].events_sent > 50, "the added stream")  # fmt: skip
    keep_before = feeds["f-keep"].events_sent
    await until(lambda: feeds["f-keep"].events_sent > keep_before + 50, "keep still flowing")
    assert await run.stop() == 0, "\n".join(run.lines)
    stats = provider.stats
    assert stats["f-keep"].connections == 1  # never reconnected
    assert stats["f-drop"].connections == 1
    assert stats["f-drop"].events_sent == drop_sent  # nothing asked for after the reload
    assert await stored_ids(db, "drop") == dropped
    assert stats["f-change"].connections == 2  # restarted once, with its new settings
    assert stats["f-add"].connections == 1
    # Every stream: ids 1..k in order, each stored once with the provider's exact bytes; for
    # the live-only keep, k is everything sent before the stop (one connection, no gap).
    for name, feed in (("keep", "f-keep"), ("change", "f-change"), ("add", "f-add")):
        c = make_config(db, {"name": name, "transport": "lines", "url": "http://x/"})
        rows = await stored(c, name)
        assert [i for i, _, _ in rows] == list(range(1, len(rows) + 1)), name
        assert all(p == event_bytes(feed, i) for i, p, _ in rows), name
    assert len(await stored_ids(db, "keep")) > keep_before
    assert "Traceback" not in "\n".join(run.lines)


async def test_an_invalid_config_is_refused_and_a_store_change_waits_for_a_restart(
    provider: Provider, tmp_path: Path, start: Callable[..., Any]
) -> None:
    cfg, db = tmp_path / "c.yaml", tmp_path / "c.db"
    keep = live(provider, "keep", "g-keep", rate=100)
    write(cfg, db, keep)
    run = await start("run", str(cfg))
    await until(lambda: "g-keep" in provider.stats
                and provider.stats["g-keep"].events_sent > 20, "flowing")  # fmt: skip
    # Invalid: a bad transport and a bad duration, each named by its field.
    good = cfg.read_text()
    bad = yaml.safe_load(good)
    bad["streams"][0]["transport"] = "carrier-pigeon"
    bad["streams"].append({**keep, "name": "other", "stall_timeout": "soon"})
    cfg.write_text(yaml.safe_dump(bad))
    mark = len(run.lines)
    run.proc.send_signal(signal.SIGHUP)
    line = await run.wait_line(lambda ln: "reload refused (" in ln, mark)
    assert "the running config stays" in line
    refused = [ln for ln in run.lines[mark:] if "reload refused: " in ln]
    assert any("streams[0].transport" in ln for ln in refused), refused
    assert any("streams[1].stall_timeout" in ln for ln in refused), refused
    # The store moves: logged as needing a restart; the running store and streams stay.
    write(cfg, db, keep, store=tmp_path / "elsewhere.db")
    mark = len(run.lines)
    run.proc.send_signal(signal.SIGHUP)
    line = await run.wait_line(lambda ln: "reloaded:" in ln, mark)
    assert "no stream or processor changed" in line
    assert "store changed: needs a restart (kept)" in line
    assert any("store changed in" in ln and "needs a restart" in ln for ln in run.lines[mark:])
    sent = provider.stats["g-keep"].events_sent
    await until(lambda: provider.stats["g-keep"].events_sent > sent + 20, "still flowing")
    assert await run.stop() == 0, "\n".join(run.lines)
    assert provider.stats["g-keep"].connections == 1
    assert not (tmp_path / "elsewhere.db").exists()
    ids = await stored_ids(db, "keep")
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > sent


SINK = """
import sys
with open(sys.argv[1], "ab") as f:
    f.write(sys.stdin.buffer.read())
"""


def command(tmp_path: Path, name: str, **extra: Any) -> dict[str, Any]:
    argv = [sys.executable, str(tmp_path / "sink.py"), str(tmp_path / f"out-{name}")]
    return {"name": name, "kind": "command", "argv": argv, "batch": 10, **extra}


def delivered(tmp_path: Path, name: str) -> list[int]:
    path = tmp_path / f"out-{name}"
    if not path.exists():
        return []
    return [int(orjson.loads(x)["seq"]) for x in path.read_bytes().splitlines()]


async def test_sighup_reloads_the_processors_of_dispatch(
    tmp_path: Path, start: Callable[..., Any]
) -> None:
    from tests.processors.helpers import DUMMY_URL, event, filled_store

    db, cfg = tmp_path / "d.db", tmp_path / "d.yaml"
    (tmp_path / "sink.py").write_text(SINK)
    store = await filled_store(db, 30)

    def write_cfg(*processors: dict[str, Any]) -> None:
        cfg.write_text(yaml.safe_dump({
            "store": f"sqlite:///{db}",
            "streams": [{"name": "s", "transport": "sse", "url": DUMMY_URL}],
            "processors": list(processors),
        }))  # fmt: skip

    try:
        write_cfg(command(tmp_path, "keep"), command(tmp_path, "gone"))
        run = await start("dispatch", str(cfg))
        await until(lambda: len(delivered(tmp_path, "gone")) == 30, "first delivery")
        await until(lambda: len(delivered(tmp_path, "keep")) == 30, "first delivery")
        write_cfg(command(tmp_path, "keep"), command(tmp_path, "new"))
        mark = len(run.lines)
        run.proc.send_signal(signal.SIGHUP)
        line = await run.wait_line(lambda ln: "reloaded:" in ln, mark)
        assert "1 processor(s) started (new)" in line
        assert "1 processor(s) stopped (gone)" in line
        assert "restarted" not in line
        await store.append("s", [event(i) for i in range(31, 51)])
        await until(lambda: len(delivered(tmp_path, "keep")) == 50, "later events")
        await until(lambda: len(delivered(tmp_path, "new")) == 50, "the new processor")
        # A changed processor restarts from its delivery cursor: nothing again, nothing skipped.
        write_cfg(command(tmp_path, "keep"), command(tmp_path, "new", batch=3))
        mark = len(run.lines)
        run.proc.send_signal(signal.SIGHUP)
        line = await run.wait_line(lambda ln: "reloaded:" in ln, mark)
        assert line.endswith("reloaded: 1 processor(s) restarted (new)")
        await store.append("s", [event(i) for i in range(51, 61)])
        await until(lambda: len(delivered(tmp_path, "new")) == 60, "after the restart")
        await until(lambda: len(delivered(tmp_path, "keep")) == 60, "after the restart")
        assert await run.stop() == 0, "\n".join(run.lines)
    finally:
        await store.close()
    assert delivered(tmp_path, "keep") == list(range(1, 61))
    assert delivered(tmp_path, "new") == list(range(1, 61))
    assert delivered(tmp_path, "gone") == list(range(1, 31))


async def test_post_api_reload_does_what_sighup_does(
    provider: Provider, tmp_path: Path
) -> None:
    import aiohttp

    from tests.ops.test_http_cli import start as start_listening

    cfg, db = tmp_path / "h.yaml", tmp_path / "h.db"
    a = live(provider, "a", "h-a", rate=100)
    write(cfg, db, a)
    proc, port, lines = await start_listening("run", str(cfg), "--http", "127.0.0.1:0")
    url = f"http://127.0.0.1:{port}/api/reload"
    try:
        await until(lambda: "h-a" in provider.stats
                    and provider.stats["h-a"].events_sent > 20, "flowing")  # fmt: skip
        write(cfg, db, a, live(provider, "b", "h-b", rate=100))
        async with aiohttp.ClientSession() as http:
            async with http.post(url) as resp:
                assert resp.status == 200
                assert await resp.json() == {
                    "reloaded": True, "detail": "reloaded: 1 stream(s) started (b)"
                }
            bad = yaml.safe_load(cfg.read_text())
            bad["streams"][1]["url"] = "ftp://nowhere/"
            cfg.write_text(yaml.safe_dump(bad))
            async with http.post(url) as resp:
                assert resp.status == 400
                body = await resp.json()
        assert body["reloaded"] is False
        assert [e.split(":", 1)[0] for e in body["errors"]] == ["streams[1].url"]
        await until(lambda: "h-b" in provider.stats
                    and provider.stats["h-b"].events_sent > 20, "the added stream")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), SLACK)
    assert code == 0, "".join(lines)
    assert provider.stats["h-a"].connections == 1
    assert provider.stats["h-b"].connections == 1
    assert any("reload refused: streams[1].url" in ln for ln in lines)
