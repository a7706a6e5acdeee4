"""WebSocket specifics: subscribe-message resume, binary frames, compression, bad UTF-8, pings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from longline.testing.provider import Provider, event_bytes
from tests.conftest import capture_until, events_at_least, make_config, quarantined, stored


async def test_subscribe_message_resume_across_cuts(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "t.db", {
        "name": "sub", "transport": "ws", "key": "$.id", "cursor": "$.id",
        "url": provider.url("ws", "sub", total=500, subscribe=1, cut_every=120),
        "subscribe": ['{"op":"subscribe","since":"{cursor}"}'], "resume": {"subscribe": True}})
    runner = await capture_until(cfg, events_at_least(500))
    rows = await stored(cfg, "sub")
    assert [r[0] for r in rows] == list(range(1, 501))
    assert runner.stats["sub"].reconnects >= 4
    assert runner.stats["sub"].duplicates == 0  # resumed exactly from the checkpoint


async def test_binary_frames_stored_as_text(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "t.db", {
        "name": "bin", "transport": "ws", "key": "$.id",
        "url": provider.url("ws", "bin", total=200, binary=1)})
    await capture_until(cfg, events_at_least(200))
    rows = await stored(cfg, "bin")
    assert [r[0] for r in rows] == list(range(1, 201))
    assert all(p == event_bytes("bin", i) for i, p, _ in rows)


@pytest.fixture
async def odd_ws_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that sends bad UTF-8, checks compression was negotiated, and pings us."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True, autoping=True)
        await ws.prepare(request)
        seen.append(f"compress={ws.compress}")
        await ws.ping(b"are-you-there")
        await ws.send_bytes(b'{"id": 1}')
        await ws.send_bytes(b'{"id": "\xff\xfe"}')  # not UTF-8
        await ws.send_str('{"id": 2}')
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.CLOSE:
                break
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/", seen
    finally:
        await runner.cleanup()


async def test_invalid_utf8_quarantined_and_compression_negotiated(
    odd_ws_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, seen = odd_ws_server
    cfg = make_config(tmp_path / "t.db", {"name": "odd", "transport": "ws", "key": "$.id",
                                          "url": url})
    runner = await capture_until(
        cfg, lambda r: r.stats["odd"].events >= 2 and r.stats["odd"].quarantined >= 1)
    assert [r[0] for r in await stored(cfg, "odd")] == [1, 2]
    reasons = await quarantined(cfg, "odd")
    assert len(reasons) == 1 and reasons[0].startswith("invalid UTF-8")
    assert seen[0] != "compress=0"  # permessage-deflate was offered and accepted
    assert runner.stats["odd"].reconnects == 0  # answering the ping kept it up
