"""``longline run --http`` as a user runs it: scrape /metrics from the real process, parse it
with prometheus-client's parser, and compare with ``longline status --json``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from longline.testing.provider import Provider
from tests.ops.http_helpers import Metrics, parse_metrics, per_stream

LISTENING = re.compile(r"HTTP listener on 127\.0\.0\.1:(\d+)")


def environ(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


async def start(
    *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """Start ``longline ARGS``; return it, the port its listener logged, and its stderr lines
    (still being collected)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    port = None
    while port is None:
        raw = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert raw, "longline ended before listening:\n" + "".join(lines)
        lines.append(raw.decode())
        if m := LISTENING.search(lines[-1]):
            port = int(m.group(1))

    async def drain(stream: asyncio.StreamReader) -> None:
        while raw := await stream.readline():
            lines.append(raw.decode())

    asyncio.get_running_loop().create_task(drain(proc.stderr))
    return proc, port, lines


async def scrape(port: int, token: str | None = None) -> Metrics:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return parse_metrics(text)


async def status_json(cfg: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "status", str(cfg), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    data: dict[str, Any] = orjson.loads(out)
    return data


async def api_status(port: int, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/api/status", headers=headers) as resp,
    ):
        assert resp.status == 200
        data: dict[str, Any] = orjson.loads(await resp.read())
    return data


def without_clock(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` less when each status was saved (it is saved every second)."""
    streams = {
        name: {k: v for k, v in st.items() if k != "updated_at"}
        for name, st in data["streams"].items()
    }
    return {**data, "streams": streams}


async def test_scraped_metrics_equal_status(provider: Provider, tmp_path: Path) -> None:
    token = "scrape-t0ken-secret"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'm.db'}",
        "http": {"listen": "127.0.0.1:0", "token": "${SCRAPE_TOKEN}"},
        "streams": [
            # Two connections deliver the events: those both carry are duplicates. Paced (1.2 s),
            # so the second connection starts before the first has stored everything.
            {"name": "twin", "transport": "sse", "redundancy": 2,
             "url": provider.url("sse", "twin", total=120, rate=100)},
            {"name": "junk", "transport": "lines", "key": "$.id",
             "url": provider.url("lines", "junk", total=100, malformed_every=10)},
            {"name": "flaky", "transport": "sse",
             "url": provider.url("sse", "flaky", total=90, disconnect_every=30),
             "backoff": {"initial": "50ms", "max": "200ms"}},
        ],
    }))
    env = environ(SCRAPE_TOKEN=token)
    proc, port, log = await start("--log-level", "DEBUG", "run", str(cfg), env=env)
    try:
        want = {"twin": 120, "junk": 100, "flaky": 90}
        counted = ("longline_events_stored", "longline_duplicates", "longline_quarantined")
        previous = None
        for _ in range(150):  # quiescent: every event stored, two scrapes alike
            m = await scrape(port, token)
            now = [per_stream(m, f) for f in counted]
            pending = per_stream(m, "longline_pending_events")
            if now[0] == want and not any(pending.values()) and previous == now:
                break
            previous = now
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"not quiescent: {m}")
        # /api/status is `longline status --json` (both read the store): compared once a status
        # save followed the quiescence, less the time of that save.
        quiet_at = time.time()
        api = await api_status(port, token)
        for _ in range(100):
            if all(st.get("updated_at", 0) > quiet_at for st in api["streams"].values()):
                break
            await asyncio.sleep(0.1)
            api = await api_status(port, token)
        cli = await status_json(cfg)
        assert set(api["streams"]) == set(want)
        assert without_clock(api) == without_clock(cli)
        streams = api["streams"]
        assert {n: (st["state"], st["run"]["connections"]) for n, st in streams.items()} == {
            "twin": ("live", 2), "junk": ("live", 1), "flaky": ("live", 1)
        }  # fmt: skip
        assert {n: st["events"] for n, st in streams.items()} == want
        assert streams["junk"]["quarantined"] == 10 and streams["flaky"]["reconnects"] >= 2
        assert api["processors"] == {}
        assert per_stream(m, "longline_stream_up") == {"twin": 1, "junk": 1, "flaky": 1}
        assert per_stream(m, "longline_connections") == {"twin": 2, "junk": 1, "flaky": 1}
        assert per_stream(m, "longline_bytes_received")["twin"] > 0
        assert m["longline_build_info"] == {(("version", "0.1.0"),): 1.0}
        assert m["longline_commit_seconds"][(("le", "+Inf"),)] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(log)
    status = (await status_json(cfg))["streams"]  # reading needs no token
    for family, key in (("longline_events_stored", "events"),
                        ("longline_duplicates", "duplicates"),
                        ("longline_quarantined", "quarantined")):
        assert per_stream(m, family) == {n: status[n][key] for n in want}, family
    assert per_stream(m, "longline_duplicates")["twin"] > 0
    assert per_stream(m, "longline_quarantined")["junk"] == 10
    # Reconnects by cause add up to the status count; the feed closed on us every 30 events.
    causes: dict[str, dict[str, float]] = {}
    for labels, value in m["longline_reconnects"].items():
        d = dict(labels)
        causes.setdefault(d["stream"], {})[d["cause"]] = value
    assert sum(causes.get("flaky", {}).values()) == status["flaky"]["reconnects"] >= 2
    assert set(causes["flaky"]) == {"closed"}
    assert token not in "".join(log)  # never logged, even at DEBUG


async def test_dispatch_serves_processor_lanes(provider: Provider, tmp_path: Path) -> None:
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'd.db'}",
        "streams": [{"name": "a", "transport": "lines", "key": "$.id",
                     "url": provider.url("lines", "a", total=40)}],
        "processors": [{"name": "sink", "kind": "command", "argv": ["cat"], "batch": 15}],
    }))
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "run", str(cfg), "--duration", "2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await run.wait() == 0  # captured and (in-process) delivered
    proc, port, log = await start("dispatch", str(cfg), "--http", "127.0.0.1:0")
    try:
        m = await scrape(port)
        lane = (("processor", "sink"), ("stream", "a"))
        # Delivered in the earlier run: the counter continues from the stored cursor.
        assert m["longline_processor_delivered"] == {lane: 40}
        assert m["longline_processor_lag_events"] == {lane: 0}
        assert m["longline_dead_letters"] == {lane: 0}
        assert m["longline_events_stored"] == {}  # this process captures nothing
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(log)


async def test_counters_continue_from_the_store_after_a_restart(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'r.db'}",
        "streams": [{"name": "a", "transport": "sse",
                     "url": provider.url("sse", "a", total=60, disconnect_every=20),
                     "backoff": {"initial": "50ms", "max": "200ms"}}],
    }))
    proc, port, log = await start("run", str(cfg), "--http", "127.0.0.1:0")
    try:
        for _ in range(150):
            if per_stream(await scrape(port), "longline_events_stored") == {"a": 60}:
                break
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(log)
    before = (await status_json(cfg))["streams"]["a"]
    assert before["events"] == 60 and before["reconnects"] >= 2
    # A new process: its first scrape already shows the store's totals, not 0.
    proc, port, log = await start("run", str(cfg), "--http", "127.0.0.1:0")
    try:
        m = await scrape(port)
        assert per_stream(m, "longline_events_stored") == {"a": 60}
        assert per_stream(m, "longline_duplicates") == {"a": before["duplicates"]}
        reconnects = {dict(k)["cause"]: v for k, v in m["longline_reconnects"].items()}
        assert reconnects == {"unknown": before["reconnects"]}  # causes are not stored
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(log)
