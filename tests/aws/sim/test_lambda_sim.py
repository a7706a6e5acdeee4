"""The Lambda handoff, exercised with real deadlines: separate processes, SIGKILL at timeout.

A resumable SSE feed and a live-only WebSocket feed (the provider forgets every resume hint)
are captured by a chain of short invocations. Nothing may be lost or doubled on either, and the
checkpoint may never move backwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from longline.aws.lambda_handler import Settings, run_invocation
from longline.aws.sim.lambda_sim import LambdaSim
from longline.config import load_config
from longline.core.model import Event
from longline.stores import open_store
from longline.testing.provider import Provider
from tests.conftest import stored

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, provider: Provider) -> Path:
    cfg = {
        "store": f"sqlite:///{tmp_path / 'lambda.db'}",
        "writer": {"batch_max": 200, "batch_window": "20ms"},
        "streams": [
            {"name": "resumable", "transport": "sse", "key": "$.id",
             "url": provider.url("sse", "resumable", rate=150, since=0)},
            {"name": "live", "transport": "ws", "key": "$.id", "cursor": "$.id",
             "url": provider.url("ws", "live", rate=150, resumable=0)},
        ],
    }
    path = tmp_path / "lambda.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def watch_checkpoints(path: Path, out: dict[str, list[int]], stop: asyncio.Event) -> None:
    """Sample every stream's checkpoint every 50 ms."""
    cfg = load_config(path)
    store = open_store(cfg.store)
    await store.open()
    try:
        while not stop.is_set():
            for s in cfg.streams:
                cp = await store.checkpoint(s.name)
                if cp is not None:
                    out.setdefault(s.name, []).append(int(cp))
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def simulate(tmp_path: Path, provider: Provider, **kw: Any) -> tuple[Any, dict[str, Any]]:
    path = write_config(tmp_path, provider)
    samples: dict[str, list[int]] = {}
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_checkpoints(path, samples, stop))
    sim = LambdaSim(path, log_dir=tmp_path, **kw)
    report = await sim.run()
    stop.set()
    await watcher
    cfg = load_config(path)
    rows = {s.name: [r[0] for r in await stored(cfg, s.name)] for s in cfg.streams}
    for name, seen in samples.items():
        assert seen == sorted(seen), f"checkpoint of {name} moved backwards"
    return report, rows


def assert_contiguous(ids: list[int], *, from_one: bool) -> None:
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert sorted(ids) == list(range(min(ids), max(ids) + 1)), "an event was lost"
    if from_one:
        assert min(ids) == 1


async def test_self_chained_handoffs_lose_and_double_nothing(provider: Provider,
                                                             tmp_path: Path) -> None:
    # Lambda's timeouts are minutes; these are seconds, so they leave room for a loaded
    # machine: margin 6 s - flush reserve 2 s gives each successor 4 s to go live, and the
    # 2 s reserve is the predecessor's time to commit, close and return.
    report, rows = await simulate(tmp_path, provider, mode="self", timeout=10.0, margin=6.0,
                                  duration=40.0, watchdog_every=30.0)
    summary = report.summary()
    assert summary["errors"] == []
    assert report.handoffs >= 5, summary
    assert_contiguous(rows["resumable"], from_one=True)
    assert_contiguous(rows["live"], from_one=False)
    epochs = [e["live"] for e in summary["epochs"]]
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)


async def test_invocation_killed_early_is_taken_over_from_checkpoint(
    provider: Provider, tmp_path: Path
) -> None:
    report, rows = await simulate(tmp_path, provider, mode="self", timeout=6.0, margin=2.5,
                                  duration=12.0, watchdog_every=1.0, lease_ttl=1.5,
                                  kill={1: 2.0})
    first = report.invocations[0]
    assert first.killed == "planned"
    # Killed before its margin, it chained nobody: the next owner is a watchdog invocation that
    # found the lease expired (the ones before it found it still held and did nothing).
    took_over = [i for i in report.invocations[1:]
                 if i.killed == "timeout" or (i.result or {}).get("started")]
    assert took_over and took_over[0].payload == {"watchdog": True}
    ids = rows["resumable"]
    assert_contiguous(ids, from_one=True)  # resumable: nothing lost
    assert max(ids) > 150 * 2.0  # the chain went on past what the killed invocation stored


class FakeContext:
    def __init__(self, seconds: float) -> None:
        self.aws_request_id = "stale"
        self.deadline = time.time() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.time()) * 1000)


async def test_stale_epoch_is_refused_and_the_invocation_exits(provider: Provider,
                                                               tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, provider))
    settings = Settings(mode="stepfunctions", margin=2.0, lease_ttl=5.0, max_overlap=10.0)
    task = asyncio.create_task(run_invocation(cfg, FakeContext(60), settings, None))
    store = open_store(cfg.store)
    await store.open()
    try:
        while (await store.checkpoint("resumable")) is None:
            await asyncio.sleep(0.05)
        leases = {s.name: await store.take_lease(s.name, "newer", 5.0) for s in cfg.streams}
        for name, lease in leases.items():
            ev = Event(key=f"new-owner-{name}", payload="{}", cursor="999999", received_at=0.0)
            res = await store.append(name, [ev], epoch=lease.epoch)
            assert not res.fenced
            await store.renew_lease(lease, 5.0, live=True)
        t0 = time.monotonic()
        result = await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 5  # exits long before its own deadline
        assert result["outcome"] == "handed-over"
        for s in cfg.streams:  # its later batches were fenced: checkpoint untouched
            assert await store.checkpoint(s.name) == "999999"
    finally:
        await store.close()


async def test_step_functions_loop_hands_over_without_loss(provider: Provider,
                                                          tmp_path: Path) -> None:
    """The interpreter runs the definition `deploy --option 2` emits; Wait = timeout - margin."""
    # As above: margin 6 s - flush reserve 2 s for the successor; Wait = 4 s.
    report, rows = await simulate(tmp_path, provider, mode="stepfunctions", timeout=10.0,
                                  margin=6.0, duration=26.0)
    summary = report.summary()
    assert summary["errors"] == []
    assert len(report.invocations) >= 5
    assert report.handoffs >= 4, summary
    assert_contiguous(rows["resumable"], from_one=True)
    assert_contiguous(rows["live"], from_one=False)
