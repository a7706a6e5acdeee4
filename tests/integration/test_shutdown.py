"""``longline run`` against a store that refuses or hangs: the stop is bounded, the exit code is
1, the last log line counts what was not committed, no checkpoint covers it, and the next run
(store healthy again) fills the gap from the resumable feed. Also the exit code of a run with a
stream the provider refuses (401).

The faults are real: a trigger that makes SQLite refuse every insert into ``events``, or another
connection holding the database's write lock (``BEGIN EXCLUSIVE``) for the whole stop.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.testing.provider import Provider, event_bytes
from tests.conftest import make_config, stored

TOTAL = 3000
DURATION = 5.0
SHUTDOWN_TIMEOUT = 1.5
SLACK = 3.0  # interpreter start-up (imports), closing, a loaded machine
REFUSE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN"
    " SELECT RAISE(ABORT, 'writes refused by the test'); END"
)


async def longline(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_config(tmp_path: Path, *streams: dict[str, Any]) -> tuple[Path, Path]:
    db = tmp_path / "s.db"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{db}",
        "shutdown_timeout": f"{SHUTDOWN_TIMEOUT}s",
        "streams": [
            {"backoff": {"initial": "50ms", "max": "500ms"}, **s} for s in streams
        ],
    }))
    return cfg, db


def resumable(provider: Provider, name: str, feed: str, **params: object) -> dict[str, Any]:
    return {
        "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id",
        "resume": {"query": "since"},
        "url": provider.url("lines", feed, since=0, **params),
    }


def count_rows(db: Path) -> int:
    if not db.exists():  # connecting would create it
        return 0
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:  # no such table yet
            return 0


def checkpoint(db: Path, stream: str) -> str | None:
    with sqlite3.connect(db, timeout=10) as conn:
        row = conn.execute("SELECT cursor FROM checkpoints WHERE stream = ?", (stream,)).fetchone()
    return None if row is None else str(row[0])


async def status_of(cfg: Path, stream: str) -> dict[str, Any]:
    code, out, err = await longline("status", str(cfg), "--json")
    assert code == 0, err
    st: dict[str, Any] = orjson.loads(out)["streams"][stream]
    return st


@pytest.mark.parametrize("fault", ["refuse", "lock"])
async def test_a_failing_store_stops_in_time_exits_1_and_the_next_run_fills_the_gap(
    provider: Provider, tmp_path: Path, fault: str
) -> None:
    feed = f"fault-{fault}"
    cfg, db = write_config(tmp_path, resumable(provider, "r", feed, total=TOTAL, rate=500))
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "run", str(cfg), "--duration", str(DURATION),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    holder: sqlite3.Connection | None = None
    connected = None  # the run's clock starts before this: the bound below is not loosened
    try:
        while count_rows(db) < 50:  # capturing, and committing
            assert loop.time() - started < DURATION + 20, "nothing stored"
            if connected is None and feed in provider.stats:
                connected = loop.time()
            await asyncio.sleep(0.05)
        holder = sqlite3.connect(db, timeout=10, isolation_level=None, check_same_thread=False)
        if fault == "refuse":
            holder.execute(REFUSE)
            for _ in range(20):  # `status` shows the store error while it lasts
                st = await status_of(cfg, "r")
                if "writes refused by the test" in str(st.get("reason")):
                    break
                await asyncio.sleep(0.1)
            assert "store write failed" in str(st["reason"]), st
        else:
            await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
        _, err_bytes = await asyncio.wait_for(proc.communicate(), DURATION + SHUTDOWN_TIMEOUT + 20)
        # From its first connection (Python's start-up on a loaded machine is not the point).
        elapsed = loop.time() - (connected or started)
    finally:
        if holder is not None and holder.in_transaction:
            holder.rollback()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = err_bytes.decode()
    assert proc.returncode == 1, err
    assert elapsed < DURATION + SHUTDOWN_TIMEOUT + SLACK, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    found = re.search(r"not checkpointed .*: r=(\d+) items$", lines[-1])
    assert found, lines[-3:]
    left = int(found[1])
    assert left > 0
    # One line per attempt of the failing store (a backoff step), never one per event; a
    # locked SQLite file makes the attempt wait (busy timeout 10 s) rather than fail.
    failures = [ln for ln in lines if "store write failed" in ln]
    assert len(failures) <= 30 and len(failures) < left
    assert failures or fault == "lock"
    # What is stored is 1..k with the checkpoint at k: nothing skipped, nothing uncovered.
    config = make_config(db, {"name": "r", "transport": "lines", "url": "http://x/"})
    ids = [i for i, _, _ in await stored(config, "r")]
    assert ids == list(range(1, len(ids) + 1))
    assert checkpoint(db, "r") == str(ids[-1])
    assert len(ids) + left <= provider.stats[feed].events_sent
    if fault == "refuse":
        st = await status_of(cfg, "r")
        assert st["state"] == "stopped"
        assert st["uncommitted"] == left
        assert st["reason"].startswith(f"{left} items not committed within shutdown_timeout")
        assert "writes refused by the test" in st["reason"]
        holder.execute("DROP TRIGGER refuse")
    holder.close()
    # The store is healthy again: the feed resumes after k and the gap fills, nothing doubled.
    code, _, err = await longline("run", str(cfg), "--duration", "3")
    assert code == 0, err
    rows = await stored(config, "r")
    assert [i for i, _, _ in rows] == list(range(1, TOTAL + 1))
    assert all(payload == event_bytes(feed, i) for i, payload, _ in rows)


async def test_a_stream_refused_with_401_makes_run_exit_1(
    provider: Provider, tmp_path: Path
) -> None:
    cfg, _ = write_config(
        tmp_path,
        resumable(provider, "good", "g401", total=100),
        {"name": "bad", "transport": "lines", "url": provider.url("lines", "b401", status=401)},
    )
    code, _, err = await longline("run", str(cfg), "--duration", "2")
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert "stream bad failed: HTTP 401" in last and "good" not in last
    st = await status_of(cfg, "good")
    assert (st["state"], st["events"]) == ("stopped", 100)
    assert (await status_of(cfg, "bad"))["state"] == "failed"


async def test_healthy_streams_exit_0(provider: Provider, tmp_path: Path) -> None:
    cfg, _ = write_config(
        tmp_path,
        resumable(provider, "a", "h1", total=100),
        resumable(provider, "b", "h2", rate=50),
    )
    code, _, err = await longline("run", str(cfg), "--duration", "2")
    assert code == 0, err
    assert "not committed" not in err and "failed" not in err
