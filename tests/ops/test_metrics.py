"""``/metrics`` scraped from real capture in-process: each ``cause`` of
``longline_reconnects_total`` made by the local provider's faults, and the gauges of a failed,
a live and a stalled-by-the-store stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from longline.testing.provider import Provider
from tests.conftest import make_config
from tests.ops.http_helpers import Metrics, per_stream, running, scrape

SLACK = 20.0  # seconds for what should happen soon on a loaded machine


def lines(provider: Provider, name: str, **params: object) -> dict[str, Any]:
    """A resumable lines stream: each reconnect asks for what follows the checkpoint."""
    return {
        "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id",
        "resume": {"query": "since"}, "url": provider.url("lines", name, since=0, **params),
        "backoff": {"initial": "50ms", "max": "200ms"},
    }  # fmt: skip


def causes(m: Metrics) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for labels, value in m["longline_reconnects"].items():
        d = dict(labels)
        out.setdefault(d["stream"], {})[d["cause"]] = value
    return out


async def scrape_until(base: str, check: Callable[[Metrics], bool], what: str) -> Metrics:
    """Scrape until ``check`` holds (every 0.1 s, up to SLACK seconds); the last scrape."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLACK
    while True:
        m = await scrape(base)
        if check(m):
            return m
        assert loop.time() < deadline, f"timed out waiting for {what}: {causes(m)}"
        await asyncio.sleep(0.1)


# What each stream's provider does, and the reconnects it must cause (exactly, once done).
EXPECTED = {
    "cut": {"network": 3},  # half of event 11, 21, then a drop after 30: reset mid-event
    "err": {"http_5xx": 2},  # two 503s without Retry-After, then the stream
    "limited": {"rate_limited": 1},  # one 429 with Retry-After: 1
    "stalled": {"stall": 2},  # silent (socket open) after 5 and after 10 events
    "closed": {"closed": 3},  # a clean end of the body after every 10 events
    "denied": {"refused": 2},  # 401 three times: failed after the third
}


async def test_reconnects_by_cause_from_real_faults(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "c.db",
        lines(provider, "cut", total=30, cut_every=10),
        lines(provider, "err", total=5, fail_first=2, fail_status=503),
        lines(provider, "limited", total=5, fail_first=1, fail_status=429, retry_after="1"),
        {**lines(provider, "stalled", total=10, stall_after=5, keepalive=0.1),
         "stall_timeout": "500ms"},
        lines(provider, "closed", total=30, disconnect_every=10),
        lines(provider, "denied", status=401),
        # Make-before-break every second; live (paced), so the feed never ends by itself.
        {**lines(provider, "rotated", rate=50), "max_lifetime": "1s"},
    )  # fmt: skip
    started = time.monotonic()
    async with running(cfg) as (runner, base, _server):
        m = await scrape_until(
            base,
            lambda m: (
                all(causes(m).get(n) == want for n, want in EXPECTED.items())
                and causes(m).get("rotated", {}).get("rotation", 0) >= 1
            ),
            "every cause",
        )
        found = causes(m)
        assert {n: found.get(n) for n in EXPECTED} == EXPECTED
        assert set(found["rotated"]) == {"rotation"}  # a rotation is no reconnect
        # Reconnects by cause add up to each stream's reconnect count (rotations aside).
        for name, want in EXPECTED.items():
            assert runner.stats[name].reconnects == sum(want.values()), name
        stored = per_stream(m, "longline_events_stored")
        assert {n: stored[n] for n in ("cut", "err", "limited", "stalled", "closed")} == {
            "cut": 30, "err": 5, "limited": 5, "stalled": 10, "closed": 30
        }  # fmt: skip
        assert runner.stats["denied"].state == "failed"
    assert time.monotonic() - started < SLACK


async def test_gauges_of_failed_and_live_streams(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "g.db",
        lines(provider, "live", rate=50),
        lines(provider, "denied", status=401),
    )
    before = time.time()
    async with running(cfg) as (runner, base, _server):
        m = await scrape_until(
            base,
            lambda m: (
                per_stream(m, "longline_events_stored").get("live", 0) >= 20
                and runner.stats["denied"].state == "failed"
            ),
            "live events and the failed stream",
        )
        scraped_at = time.time()
        assert per_stream(m, "longline_stream_up") == {"live": 1, "denied": 0}
        assert per_stream(m, "longline_connections") == {"live": 1, "denied": 0}
        # Only the stream that stored events has a last-event time: just now (paced at 50/s).
        last = per_stream(m, "longline_last_event_timestamp_seconds")
        assert list(last) == ["live"]
        assert before <= last["live"] <= scraped_at
        assert scraped_at - last["live"] < 5.0
        assert per_stream(m, "longline_events_stored")["denied"] == 0
        assert per_stream(m, "longline_pending_events")["denied"] == 0
