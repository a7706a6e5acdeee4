"""`longline status` as a user runs it: totals that survive SIGKILL, `--check`, a mistyped
store path, and reading commands without the processors' secrets. Real subprocesses, a real
provider, a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.testing.provider import Provider

COUNTERS = ("events", "duplicates", "quarantined", "reconnects")


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def status_of(cfg: Path, stream: str) -> dict[str, Any]:
    code, out, err = await cli("status", str(cfg), "--json")
    assert code == 0, err
    st: dict[str, Any] = orjson.loads(out)["streams"][stream]
    return st


def totals_of(st: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(st[k]) for k in COUNTERS)


def rows(db: Path) -> tuple[int, int]:
    """(events, quarantined) rows the SQLite file holds, counted directly."""
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        quarantined = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    conn.close()
    return int(events), int(quarantined)


async def start_run(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "run", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def stored_totals(db: Path, stream: str) -> tuple[int, ...] | None:
    """The totals row as the SQLite file holds it (None before `run` made it)."""
    if not db.exists():  # sqlite3.connect would create it
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT events, duplicates, quarantined, reconnects FROM totals WHERE stream = ?",
                (stream,),
            ).fetchone()
        conn.close()
    except sqlite3.OperationalError:  # the schema is being created
        return None
    return tuple(row) if row else None


async def wait_totals(db: Path, stream: str, want: tuple[int, ...]) -> None:
    got = None
    for _ in range(300):
        got = stored_totals(db, stream)
        if got == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"totals never reached {want}: {got}")


async def wait_saved(cfg: Path, stream: str, done: Callable[[dict[str, Any]], bool]) -> None:
    """Until the status the running process saves (once a second) satisfies ``done``."""
    st: dict[str, Any] = {}
    for _ in range(50):
        st = await status_of(cfg, stream)
        if done(st):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"status never got there: {st}")


async def test_totals_survive_sigkill_and_restart(provider: Provider, tmp_path: Path) -> None:
    """Two connections (redundancy 2) to a feed that does not resume: each of the 60 events
    arrives twice (60 duplicates), each connection sends 3 malformed lines (6 quarantined),
    and the first two attempts are refused (2 reconnects). A restart replays the feed on both
    connections again: 120 more duplicates, 6 more quarantined."""
    db = tmp_path / "t.db"
    url = provider.url("lines", "t", total=60, resumable=0, malformed_every=20,
                       fail_first=2, fail_status=503)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{db}", "streams": [
        {"name": "t", "transport": "lines", "key": "$.id", "url": url, "redundancy": 2,
         "backoff": {"initial": "50ms", "max": "100ms"}}]}))
    proc = await start_run(cfg)
    try:
        await wait_totals(db, "t", (60, 60, 6, 2))
        await wait_saved(cfg, "t", lambda st: st.get("run", {}).get("duplicates") == 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    st = await status_of(cfg, "t")
    assert st["state"] == "dead"
    assert totals_of(st) == (60, 60, 6, 2)
    assert rows(db) == (60, 6)

    proc = await start_run(cfg)
    try:
        await wait_totals(db, "t", (60, 180, 12, 2))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    st = await status_of(cfg, "t")
    assert totals_of(st) == (60, 180, 12, 2)
    assert rows(db) == (60, 12)
    assert (st["state"], st.get("reason")) == ("stopped", None)
    # This run's own figures sit beside the totals.
    run = st["run"]
    assert (run["events"], run["duplicates"], run["quarantined"], run["reconnects"]) == (
        0, 120, 6, 0)
    code, out, err = await cli("status", str(cfg))  # the table shows the totals
    assert code == 0, err
    line = next(x for x in out.splitlines() if "│ t " in x)
    assert [c.strip() for c in line.strip("│ \n").split("│")][3:7] == ["60", "180", "12", "2"]
    code, _, err = await cli("status", str(cfg), "--check")
    assert (code, err) == (0, "")


async def test_check_fails_on_failed_and_dead_streams(provider: Provider, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{db}", "streams": [
        {"name": "ok", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "ok", total=5)},
        {"name": "denied", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "denied", status=401)}]}))
    code, _, err = await cli("run", str(cfg), "--duration", "2")
    assert code in (0, 1), err  # exit codes of `run` are not this test's subject
    code, out, err = await cli("status", str(cfg), "--check")
    assert code == 1
    assert err.splitlines() == [next(x for x in err.splitlines() if x.startswith(
        "stream denied: failed:"))]
    assert "401" in err
    code, out, err = await cli("status", str(cfg), "--json", "--check")
    assert code == 1
    data = orjson.loads(out)["streams"]
    assert (data["ok"]["state"], data["denied"]["state"]) == ("stopped", "failed")

    healthy = tmp_path / "h.yaml"
    healthy.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'h.db'}", "streams": [
        {"name": "live", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "live", rate=50)}]}))
    proc = await start_run(healthy)
    try:
        for _ in range(50):  # until `run` has created the store
            if (tmp_path / "h.db").exists():
                break
            await asyncio.sleep(0.1)
        await wait_saved(healthy, "live", lambda st: st["state"] == "live")
        code, _, err = await cli("status", str(healthy), "--check")
        assert (code, err) == (0, "")
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    code, _, err = await cli("status", str(healthy), "--check")
    assert code == 1
    assert err == "stream live: dead: the process stopped without shutting down\n"


async def test_reading_a_missing_sqlite_store_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "typo.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{db}", "streams": [
        {"name": "a", "transport": "lines", "url": "http://127.0.0.1:9/"}],
        "processors": [{"name": "p", "kind": "command", "argv": ["true"]}]}))
    for args in (("status",), ("status", "--json"), ("events", "--stream", "a"),
                 ("deadletters",)):
        code, out, err = await cli(args[0], str(cfg), *args[1:])
        assert code == 1, (args, err)
        assert out == ""
        assert err.endswith(f"store: no SQLite store at {db} (`longline run` creates it)\n")
        assert err.count("\n") == 1  # one line, no traceback
        assert not db.exists()
        assert list(tmp_path.iterdir()) == [cfg]


async def test_reading_commands_need_no_stream_or_processor_secrets(
    provider: Provider, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    cfg = tmp_path / "c.yaml"
    feed = provider.url("lines", "s", total=3)
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{db}", "streams": [
        {"name": "a", "transport": "lines", "key": "$.id", "url": feed,
         "headers": {"Authorization": "Bearer ${FEED_TOKEN}"}}],
        "processors": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/${HOOK}",
                        "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}]}))
    secrets = {"FEED_TOKEN": "f", "HOOK": "h", "HOOK_TOKEN": "t"}
    code, _, err = await cli("run", str(cfg), "--duration", "1.5", env=secrets)
    assert code == 0, err
    for name in secrets:
        os.environ.pop(name, None)
    code, out, err = await cli("status", str(cfg), "--json")
    assert code == 0, err
    assert orjson.loads(out)["streams"]["a"]["events"] == 3
    code, out, err = await cli("events", str(cfg), "--stream", "a")
    assert code == 0, err
    assert [orjson.loads(x)["seq"] for x in out.splitlines()] == [1, 2, 3]
    code, out, err = await cli("deadletters", str(cfg))
    assert (code, out) == (0, ""), err
    # Commands that connect still need them, and say which is missing.
    code, _, err = await cli("run", str(cfg), "--duration", "1")
    assert code == 2
    assert "environment variable FEED_TOKEN is not set" in err
    code, _, err = await cli("deadletters", str(cfg), "--retry")
    assert code == 2
    assert "environment variable HOOK_TOKEN is not set" in err
