"""``session: {factory: ...}``: a third-party session class, its options, the checkpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

from longline.engine.runner import Runner
from longline.testing.provider import Provider, event_bytes
from tests.conftest import make_config, stored
from tests.sessions.custom_session import SEEN


async def test_factory_session_resumes_from_the_checkpoint(
    provider: Provider, tmp_path: Path
) -> None:
    SEEN.clear()
    s = {
        "name": "custom",
        "transport": "ws",
        "url": provider.url("ws", "custom", total=300, rate=500, disconnect_every=70),
        "session": {"factory": "tests.sessions.custom_session:ResumingFeed", "every": 3},
    }
    cfg = make_config(tmp_path / "f.db", s)
    runner = Runner(cfg, status_interval=0.2)
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline and (
        "custom" not in runner.stats or runner.stats["custom"].events < 100
    ):
        await asyncio.sleep(0.05)
    runner.stop()
    await task
    rows = await stored(cfg, "custom")
    assert [r[0] for r in rows] == list(range(3, 301, 3))  # each once, in order, no gap
    assert all(payload == event_bytes("custom", i) for i, payload, _ in rows)
    assert provider.stats["custom"].connections >= 4  # cut every 70 events: resumed each time
    assert SEEN[0] is None and len(SEEN) >= 4
    assert [int(c) for c in SEEN[1:] if c] == sorted(int(c) for c in SEEN[1:] if c)
    assert all(int(c) % 3 == 0 for c in SEEN[1:] if c)  # the committed cursor, not the last seen
