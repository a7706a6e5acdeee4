"""The benchmark harness must keep working: run its smoke mode end to end (no speed checks)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.nullstore import NullStore
from longline.stores.base import Store

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["mode"] == "smoke"
    rates = doc["rates"]
    for name in (
        "raw_sqlite",
        "raw_receive.ws",
        "raw_receive.lines",
        "raw_receive.sse",
        "naive_loop.lines",
        "durable.ws",
        "durable.lines",
        "durable.sse",
        "null.ws",
        "null.lines",
        "redundancy2.ws",
        "durable.lines@2000",
    ):
        assert len(rates[name]["runs"]) == 1, name
        assert rates[name]["median"] > 0, name
    assert set(doc["details"]) >= {"latency.ws", "latency.lines", "idle.ws"}
    idle = doc["details"]["idle.ws"]["runs"][0]
    assert idle["connected"] == idle["streams"] == 20
    assert {t["target"].split()[0] for t in doc["targets"]} >= {"durable.ws", "null.lines"}
    assert doc["machine"]["cores"] >= 1


def test_null_store_has_every_store_method() -> None:
    wanted = {
        name
        for name, member in inspect.getmembers(Store)
        if (not name.startswith("_") or name in ("__aenter__", "__aexit__"))
        and inspect.isfunction(member)
    }
    assert {"append", "ack", "take_lease", "last_seq", "__aenter__"} <= wanted
    missing = sorted(name for name in wanted if not hasattr(NullStore, name))
    assert missing == []


def test_worker_benchmark_runs_on_postgresql(pg_server: str) -> None:
    """benchmarks/workers.py at a tiny size: spread, capture and takeover all measured."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.workers", "--streams", "6", "--workers", "2",
         "--events", "20", "--ttl", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "LONGLINE_TEST_POSTGRES": pg_server},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.splitlines()[0])
    assert row["workers"] == 2 and row["streams"] == 6 and row["killed_streams"] == 3
    assert row["spread_s"] > 0 and row["events_per_s"] > 0
    assert 0 < row["takeover_owned_s"] <= row["takeover_storing_s"]
