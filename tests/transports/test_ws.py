"""WebSocket specifics: subscribe-message resume, binary frames, compression, bad UTF-8, pings."""

from __future__ import annotations

import asyncio
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


async def _serve(handler: object) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_direct_connection_sends_headers_echoes_ping_payloads_and_reports_close_code(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The hand-made upgrade (``ws_direct``): the stream's headers and query reach the
    server, a server ping comes back as a pong with the same payload, our own pings flow, and
    a close frame's code is the reason of the reconnect."""
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=True)
        await ws.prepare(request)
        seen.setdefault("header", request.headers.get("X-Feed-Token"))
        seen.setdefault("query", request.query_string)
        seen.setdefault("compress", ws.compress)
        await ws.ping(b"echo-me-7")
        pings = 0
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PONG:
                seen.setdefault("pong", msg.data)
                await ws.send_str('{"id": 1}')
            elif msg.type is aiohttp.WSMsgType.PING:
                pings += 1
                if pings == 2:  # two of our pings (100 ms apart) came: close with a code
                    seen.setdefault("client_pings", pings)
                    await ws.close(code=4001, message=b"bye")
        return ws

    runner, port = await _serve(handler)
    try:
        cfg = make_config(tmp_path / "t.db", {
            "name": "direct", "transport": "ws", "key": "$.id", "ping_interval": "100ms",
            "url": f"ws://127.0.0.1:{port}/feed?since=0&x=1",
            "headers": {"X-Feed-Token": "t-1"}})
        r = await capture_until(
            cfg, lambda r: r.stats["direct"].events >= 1 and r.stats["direct"].reconnects >= 1)
    finally:
        await runner.cleanup()
    assert seen["header"] == "t-1"
    assert seen["query"] == "since=0&x=1"
    assert seen["compress"] != 0  # permessage-deflate negotiated
    assert seen["pong"] == b"echo-me-7"
    assert seen["client_pings"] == 2
    assert [row[0] for row in await stored(cfg, "direct")] == [1]
    assert r.stats["direct"].reconnect_causes == {"closed": 1}
    assert "connection ended (closed by peer (code 4001))" in caplog.text


async def test_direct_handshake_refusals_and_bad_answers(tmp_path: Path) -> None:
    """A refusal's chunked body and ``Retry-After`` are read, and a 101 with a wrong
    ``Sec-WebSocket-Accept`` is refused as a network error, through ``probe``."""
    from longline.core.errors import Cause
    from longline.core.resume import ConnectRequest
    from longline.transports.ws_direct import DirectWSConnection

    async def refuse(request: web.Request) -> web.StreamResponse:
        if request.path == "/bad-accept":
            return web.Response(status=101, headers={
                "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Accept": "bm90LXRoZS1yaWdodC1rZXk="})
        resp = web.StreamResponse(status=503, headers={"Retry-After": "7"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"maintenance ")
        await resp.write(b"until noon")
        await resp.write_eof()
        return resp

    runner, port = await _serve(refuse)
    try:
        def conn(path: str) -> DirectWSConnection:
            request = ConnectRequest(url=f"ws://127.0.0.1:{port}{path}", headers={})
            return DirectWSConnection(
                request, max_message_size=1 << 20, connect_timeout=5.0, ping_interval=None)

        busy = await conn("/busy").probe()
        bad = await conn("/bad-accept").probe()
    finally:
        await runner.cleanup()
    assert busy is not None and busy.status == 503 and busy.retry_after == 7.0
    assert busy.detail.endswith(": maintenance until noon")
    assert bad is not None and bad.cause is Cause.NETWORK
    assert bad.detail == "invalid WebSocket handshake response"


async def test_direct_connection_closes_an_oversized_message_with_1009(tmp_path: Path) -> None:
    """Over ``max_message_size``: the server is told 1009 (RFC 6455), the message is
    quarantined as oversized, and the stream reconnects and goes on."""
    codes: list[int | None] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        if not codes:
            await ws.send_str('{"id": 1, "pad": "' + "x" * 4000 + '"}')
            msg = await ws.receive()
            codes.append(ws.close_code if msg.type is aiohttp.WSMsgType.CLOSE else None)
        else:
            await ws.send_str('{"id": 2}')
            async for _ in ws:
                pass
        return ws

    runner, port = await _serve(handler)
    try:
        cfg = make_config(tmp_path / "t.db", {
            "name": "big", "transport": "ws", "key": "$.id", "max_message_size": "1KB",
            "url": f"ws://127.0.0.1:{port}/"})
        await capture_until(
            cfg, lambda r: r.stats["big"].events >= 1 and r.stats["big"].quarantined >= 1)
    finally:
        await runner.cleanup()
    assert codes == [1009]
    assert [row[0] for row in await stored(cfg, "big")] == [2]
    reasons = await quarantined(cfg, "big")
    assert len(reasons) == 1
    assert reasons[0].startswith("message of ") and "exceeds max_message_size 1000" in reasons[0]


def _client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of each whole masked client frame in ``data`` (short ones)."""
    out = []
    while len(data) >= 6:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        mask, payload = data[2:6], data[6 : 6 + size]
        out.append((opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))))
        data = data[6 + size :]
    return out


async def test_direct_connection_reads_frames_that_come_with_the_101_or_split_anywhere(
    tmp_path: Path,
) -> None:
    """Frames in the same read as the 101 answer are pushed once the pump starts; a frame cut
    into one-byte reads is put together; a ping among them is answered; a close frame ends the
    connection with its code; a frame with a reserved opcode is answered with a 1002 close and
    ends it as a network error. What each connection sent is stored once, in order."""
    import base64
    import hashlib
    import struct

    from aiohttp.http_websocket import WS_KEY

    def server_frame(opcode: int, payload: bytes) -> bytes:
        return bytes((0x80 | opcode, len(payload))) + payload

    sent_back: list[list[tuple[int, bytes]]] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_KEY).digest())
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        if connections == 1:
            writer.write(
                answer + server_frame(1, b'{"id": 1}') + server_frame(1, b'{"id": 2}')
                + server_frame(9, b"p-1")
            )  # fmt: skip
            for byte in server_frame(1, b'{"id": 3}'):
                writer.write(bytes((byte,)))
                await writer.drain()
                await asyncio.sleep(0.01)
            writer.write(server_frame(8, struct.pack("!H", 4002)))
        elif connections == 2:
            writer.write(answer + server_frame(3, b"reserved opcode"))
        else:
            writer.write(answer)
        try:
            data = await asyncio.wait_for(reader.read(), 5)
        except TimeoutError:
            data = b""
        sent_back.append(_client_frames(data))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = make_config(tmp_path / "t.db", {
            "name": "raw", "transport": "ws", "key": "$.id", "url": f"ws://127.0.0.1:{port}/",
            "ping_interval": "20s", "stall_timeout": "30s"})
        r = await capture_until(
            cfg, lambda r: r.stats["raw"].events >= 3 and r.stats["raw"].reconnects >= 2)
    finally:
        server.close()
        await server.wait_closed()
    assert [row[0] for row in await stored(cfg, "raw")] == [1, 2, 3]
    assert r.stats["raw"].reconnect_causes == {"closed": 1, "network": 1}
    assert sent_back[0] == [(0xA, b"p-1"), (0x8, struct.pack("!H", 4002))]
    assert sent_back[1] == [(0x8, struct.pack("!H", 1002))]


def test_direct_connection_with_aiohttp_pure_python_frame_parser() -> None:
    """``AIOHTTP_NO_EXTENSIONS=1`` makes aiohttp use its pure-Python frame parser, which reads
    the queue's attributes where the compiled one reads C fields: the direct connection's
    ``_Inbox`` must serve both. The ws tests above, run again under that parser."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, pytest\n"
        "from aiohttp._websocket.reader import WebSocketReader\n"
        "assert WebSocketReader.__module__.endswith('reader_py'), WebSocketReader.__module__\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    tests = "subscribe_message or binary_frames or oversized or split_anywhere or close_code"
    done = subprocess.run(
        [sys.executable, "-c", script, "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
         __file__, "-k", tests],
        env={**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout, done.stdout[-2000:]


async def test_compression_false_offers_no_permessage_deflate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``options: {compression: false}``: the upgrade offers no extension, the provider sends
    whole frames, capture is the same; through a proxy aiohttp's client is told the same."""
    from longline.transports.base import ConnectSpec
    from longline.transports.registry import REGISTRY as TRANSPORTS
    from longline.transports.ws import WSConnection

    seen: list[tuple[str | None, object]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        seen.append((request.headers.get("Sec-WebSocket-Extensions"), ws.compress))
        for i in (1, 2, 3):
            await ws.send_str(f'{{"id": {i}}}')
        async for _ in ws:
            pass
        return ws

    runner, port = await _serve(handler)
    try:
        streams = [
            {"name": name, "transport": "ws", "key": "$.id", "url": f"ws://127.0.0.1:{port}/",
             **({"options": {"compression": on}} if on is not None else {})}
            for name, on in (("plain", False), ("default", None))
        ]  # fmt: skip
        cfg = make_config(tmp_path / "t.db", *streams)
        await capture_until(cfg, lambda r: all(s.events >= 3 for s in r.stats.values()))
    finally:
        await runner.cleanup()
    assert sorted(seen, key=str) == [
        ("permessage-deflate; client_max_window_bits", 15),
        (None, 0),
    ]
    for name in ("plain", "default"):
        assert [row[0] for row in await stored(cfg, name)] == [1, 2, 3]
    plain = cfg.streams[0]
    assert plain.transport_options.model_dump() == {"compression": False}
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    from longline.core.resume import ConnectRequest

    async with aiohttp.ClientSession() as session:
        spec = ConnectSpec(
            session=session, request=ConnectRequest(url="wss://127.0.0.1:9/", headers={}),
            max_message_size=1000, connect_timeout=1.0, ping_interval=0.0,
            options=plain.transport_options)  # fmt: skip
        conn = TRANSPORTS.get("ws").connect(spec)
    assert isinstance(conn, WSConnection) and conn.compression is False
