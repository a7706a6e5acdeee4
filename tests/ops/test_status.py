"""``longline status``: JSON shape, processor lag, and the table a person reads."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from longline.config import parse_config
from longline.core.model import Event
from longline.ops.status import collect_status, render_status
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
