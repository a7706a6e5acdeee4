"""SIGKILL of the whole ``longline run`` process, then restart: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

import pytest
import yaml

from longline.testing.provider import Provider, event_bytes
from tests.conftest import make_config, stored

TOTAL = 5000


async def start_run(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "longline",
        "--log-level",
        "ERROR",
        "run",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("transport", ["sse", "ws", "lines"])
async def test_sigkill_and_restart_store_exact_set(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    feed = f"kill-{transport}"
    s: dict[str, object] = {
        "name": feed,
        "transport": transport,
        "key": "$.id",
        # since=0: the first connection starts at event 1 even when the feed's clock already
        # ran (a process killed before its first commit); resume replaces it afterwards.
        "url": provider.url(transport, feed, total=TOTAL, rate=1000, since=0),
    }
    if transport != "sse":
        s.update(cursor="$.id", resume={"query": "since"})
    db = tmp_path / "k.db"
    cfg_file = tmp_path / "k.yaml"
    cfg_file.write_text(yaml.safe_dump({"store": f"sqlite:///{db}", "streams": [s]}))
    cfg = make_config(db, s)
    rng = random.Random(transport)
    for round_ in range(4):
        proc = await start_run(cfg_file)
        # Kill mid-capture: once this process is connected, at a random moment.
        while feed not in provider.stats or provider.stats[feed].connections <= round_:
            await asyncio.sleep(0.02)
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
    before = provider.stats[feed].connections
    proc = await start_run(cfg_file)
    # It connects after installing its signal handlers: SIGTERM earlier (a slow start on a
    # loaded machine) would find Python's default action and end it with -15.
    while provider.stats[feed].connections <= before:
        assert proc.returncode is None, "the last run ended before connecting"
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        await asyncio.sleep(0.3)
        if len(await stored(cfg, feed)) >= TOTAL:
            break
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    rows = await stored(cfg, feed)
    assert [r[0] for r in rows] == list(range(1, TOTAL + 1))
    assert all(payload == event_bytes(feed, i) for i, payload, _ in rows)
    assert provider.stats[feed].connections >= 5
