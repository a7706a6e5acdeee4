"""``connect_rate``: a process opens its connections at a bounded, jittered rate, at start and
when a provider-wide outage ends, instead of all at once. Real connections to the local
provider, counted on the provider's side."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path

from longline.engine.gate import ConnectGate
from longline.engine.runner import Runner
from longline.testing.provider import Provider
from tests.conftest import make_config

STREAMS, RATE = 40, 20.0


async def test_slots_are_spaced_one_over_the_rate_on_average() -> None:
    gate = ConnectGate(100.0, random.Random(7))
    start = asyncio.get_running_loop().time()
    # 1000 reservations at one instant (a start storm): when each may connect.
    slots = [start + gate.reserve(now=start) for _ in range(1000)]
    assert slots[0] == start
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 0.005 - 1e-6 and max(gaps) <= 0.015 + 1e-6  # jittered 0.5x..1.5x
    assert abs((slots[-1] - slots[0]) / 999 - 0.01) < 0.001  # 100 per second on average


async def test_a_start_opens_connections_at_the_rate(provider: Provider, tmp_path: Path) -> None:
    streams = [
        {"name": f"s{i}", "transport": "lines", "url": provider.url("lines", f"s{i}", rate=1)}
        for i in range(STREAMS)
    ]
    cfg = make_config(tmp_path / "c.db", *streams, connect_rate=RATE)
    runner = Runner(cfg, status_interval=0.5)
    task = asyncio.create_task(runner.run())
    started = time.monotonic()
    seen: list[tuple[float, int]] = []
    try:
        while provider.open_connections < STREAMS and time.monotonic() - started < 20:
            seen.append((time.monotonic() - started, provider.open_connections))
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
    finally:
        runner.stop()
        await task
    # 40 connections at 20/s take about 2 s; never more than the rate allows at any moment.
    assert took > (STREAMS - 1) / RATE * 0.6, seen
    for at, open_now in seen:
        assert open_now <= at * RATE * 1.5 + 2, (at, open_now, seen)
    assert sum(provider.stats[f"s{i}"].connections for i in range(STREAMS)) == STREAMS
