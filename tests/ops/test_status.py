"""``longline status``: JSON shape, processor lag, and the table a person reads."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from rich.console import Console

from longline.config import parse_config
from longline.core.model import Event, Quarantined
from longline.engine.stats import StreamStats
from longline.ops.status import collect_status, problems, render_status
from longline.stores import open_store


async def test_status_reports_streams_and_processor_lag(tmp_path: Path) -> None:
    cfg = parse_config({
        "store": f"sqlite:///{tmp_path / 's.db'}",
        "streams": [{"name": "a", "transport": "lines", "url": "http://127.0.0.1:9/"}],
        "processors": [{"name": "p", "kind": "command", "argv": ["true"]}],
    })
    store = open_store(cfg.store)
    await store.open()
    try:
        events = [Event(key=str(i), payload="{}", cursor=str(i), received_at=1.0)
                  for i in range(1, 11)]
        await store.append("a", events)
        await store.put_status("a", {"state": "stopped", "events": 10, "last_seq": 10,
                                     "worker": "host:1", "epoch": 3, "updated_at": 0})
        await store.ack("p", "a", 4)
    finally:
        await store.close()
    data = await collect_status(cfg)
    a = data["streams"]["a"]
    assert (a["state"], a["events"], a["cursor"], a["worker"]) == ("stopped", 10, "10", "host:1")
    assert data["processors"] == {"p": {"streams": {"a": {"delivered_seq": 4, "lag": 6}},
                                        "dead_letters": 0}}
    out = io.StringIO()
    render_status(data, Console(file=out, width=200))
    text = out.getvalue()
    assert "host:1 (epoch 3)" in text
    row = next(line for line in text.splitlines() if "│ p " in line)
    assert [c.strip() for c in row.strip("│ \n").split("│")] == ["p", "a", "4", "6", "0"]


async def test_totals_beside_the_run_and_stalled_streams(tmp_path: Path) -> None:
    cfg = parse_config({
        "store": f"sqlite:///{tmp_path / 's.db'}",
        "streams": [
            {"name": name, "transport": "lines", "url": "http://127.0.0.1:9/",
             "stall_timeout": "5s"}
            for name in ("stalled", "retrying", "live", "fresh", "killed-early")
        ],
    })
    store = open_store(cfg.store)
    await store.open()
    now = time.time()
    try:
        await store.append("live", [Event("1", "{}", None, 1.0), Event("1", "{}", None, 1.0)],
                           reconnects=3)
        await store.quarantine("live", [Quarantined("no key", b"{}", 1.0)])
        await store.append("killed-early", [Event("1", "{}", None, 1.0)])
        mine = {"pid": os.getpid(), "updated_at": now}
        await store.put_status("stalled", {**mine, "state": "backing-off", "reason": "503",
                                           "down_since": now - 6})
        await store.put_status("retrying", {**mine, "state": "connecting",
                                            "down_since": now - 1})
        await store.put_status("live", {**mine, "state": "live", "down_since": None,
                                        "events": 0, "duplicates": 1, "reconnects": 1})
    finally:
        await store.close()
    data = await collect_status(cfg)
    streams = data["streams"]
    assert streams["stalled"]["stalled"] is True
    assert "stalled" not in streams["retrying"]
    live = streams["live"]
    assert (live["events"], live["duplicates"], live["quarantined"], live["reconnects"]) == (
        1, 1, 1, 3)
    assert live["run"] == {"events": 0, "duplicates": 1, "reconnects": 1}
    assert streams["fresh"] == {"state": "never-run", "events": 0, "duplicates": 0,
                                "quarantined": 0, "reconnects": 0, "cursor": None}
    assert streams["killed-early"]["state"] == "unknown"
    assert problems(data) == ["stream stalled: stalled: 503"]
    out = io.StringIO()
    render_status(data, Console(file=out, width=200))
    assert "backing-off (stalled)" in out.getvalue()


def test_going_live_clears_the_reason_and_marks_since_when_down() -> None:
    stats = StreamStats(started_at=100.0)
    assert stats.down_since == 100.0
    stats.reason = "connection refused"
    stats.set_state("backing-off")
    assert (stats.reason, stats.down_since) == ("connection refused", 100.0)
    stats.set_state("live")
    assert (stats.state, stats.reason, stats.down_since) == ("live", None, None)
    before = time.time()
    stats.set_state("backing-off")
    assert stats.down_since is not None and stats.down_since >= before
