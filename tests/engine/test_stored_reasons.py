"""Quarantine and status reasons are redacted before they are stored: `events --quarantined`
and `status` print them from the store, where the log filter cannot reach."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from longline.config import parse_config
from longline.core.model import Quarantined
from longline.core.secrets import REDACTED
from longline.engine.runner import Runner
from longline.stores import SQLiteStore
from longline.testing.provider import Provider


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_reasons_are_stored_without_secrets(provider: Provider, tmp_path: Path) -> None:
    host = f"127.0.0.1:{closed_port()}"
    env = {"FEED_HOST": host, "ACCT": "acct_7f3k9"}
    cfg = parse_config(
        {
            "store": f"sqlite:///{tmp_path / 'r.db'}",
            "streams": [
                # A connection that cannot be made: its error names the (secret) host.
                {"name": "down", "transport": "sse", "url": "http://${FEED_HOST}/sse",
                 "backoff": {"initial": "50ms", "max": "100ms"}},
                {"name": "down-ws", "transport": "ws", "url": "ws://${FEED_HOST}/ws",
                 "backoff": {"initial": "50ms", "max": "100ms"}},
                # Every event lacks the key path, whose name happens to be a secret's value.
                {"name": "bad", "transport": "lines", "key": "$.acct_7f3k9",
                 "url": provider.url("lines", "q", total=3), "headers": {"X-Acct": "${ACCT}"}},
                # Refused for good: it failed, and says why even after the stop.
                {"name": "refused", "transport": "sse", "url": provider.url("sse", "r", status=401),
                 "backoff": {"initial": "50ms", "max": "100ms"}},
            ],
        },
        env=env,
    )  # fmt: skip
    assert {host, "acct_7f3k9"} <= cfg.secrets
    runner = Runner(cfg, status_interval=0.1)
    run = asyncio.create_task(runner.run(duration=30.0))

    # The saved reason is read while the stream backs off.
    status: dict[str, Any] = {}
    quarantined: list[Quarantined] = []
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            store = SQLiteStore(tmp_path / "r.db")
            await store.open()
            try:
                status = await store.get_status()
                quarantined = await store.read_quarantine("bad", 0, 100)
            finally:
                await store.close()
            failed = (status.get("refused") or {}).get("state") == "failed"
            down = all((status.get(n) or {}).get("reason") for n in ("down", "down-ws"))
            if down and len(quarantined) == 3 and failed:
                break
    finally:
        runner.stop()
        await run
    store = SQLiteStore(tmp_path / "r.db")
    await store.open()
    try:
        after = await store.get_status()
    finally:
        await store.close()
    # Named once, as host:port, and so redacted whole: never again as ('127.0.0.1', port).
    refused = f"ClientConnectorError: Cannot connect to host {REDACTED} ssl:default"
    assert status["down"]["reason"] == f"{refused} [Connection refused]"
    assert status["down-ws"]["reason"] == f"{refused} [Connection refused]"
    assert [q.reason for q in quarantined] == [f"key path $.{REDACTED} not found"] * 3
    assert "acct_7f3k9" not in str(status)

    # A clean stop leaves no stale error: the stream that was merely reconnecting shows none;
    # the one that failed keeps why (it did fail, and `status` must say so after the stop).
    assert (after["down"]["state"], after["down"]["reason"]) == ("stopped", None)
    assert (after["bad"]["state"], after["bad"]["reason"]) == ("stopped", None)
    assert after["refused"]["state"] == "failed"
    assert after["refused"]["reason"] == "HTTP 401 Unauthorized: refused (3 attempts)"
