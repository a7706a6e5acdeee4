"""The fault-injecting proxy against the real local provider: each fault as a client sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from longline.testing.faultproxy import FaultProxy
from longline.testing.provider import Provider, event_bytes


@pytest.fixture
async def proxy(provider: Provider) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", provider.port) as p:
        yield p


async def open_lines(proxy: FaultProxy, provider: Provider, feed: str, **params: object) -> tuple[
    asyncio.StreamReader, asyncio.StreamWriter
]:
    """A raw HTTP request through the proxy; the body comes back chunked."""
    url = provider.url("lines", feed, **params)
    path = url.split(str(provider.port), 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def wait_active(proxy: FaultProxy) -> None:
    for _ in range(100):
        if proxy.active:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no proxied connection")


async def test_passes_bytes_through_and_records_the_connection(
    proxy: FaultProxy, provider: Provider
) -> None:
    reader, writer = await open_lines(proxy, provider, "pass", total=3, keepalive=0)
    body = b""
    while body.count(b"}\n") < 3:
        body += await reader.read(4096)
    assert b"".join(event_bytes("pass", i) + b"\n" for i in (1, 2, 3)) in body
    writer.close()
    await asyncio.sleep(0.1)
    [rec] = proxy.history
    assert rec.first_byte is not None and rec.closed is not None
    assert rec.fault is None and rec.bytes_down > 600
    assert proxy.active == []


async def test_cut_leaves_half_an_event_then_eof(proxy: FaultProxy, provider: Provider) -> None:
    reader, _ = await open_lines(proxy, provider, "cut", rate=50, keepalive=0)
    await reader.readuntil(b"\n")
    await proxy.cut(proxy.active[0])
    rest = await asyncio.wait_for(reader.read(), 5)  # until EOF
    assert rest and not rest.endswith(b"\r\n")  # the last chunk is unfinished
    assert proxy.history[0].fault == "cut"


async def test_reset_is_a_tcp_reset(proxy: FaultProxy, provider: Provider) -> None:
    reader, _ = await open_lines(proxy, provider, "rst", rate=50, keepalive=0)
    await reader.readuntil(b"\n")
    proxy.reset(proxy.active[0])
    with pytest.raises(ConnectionResetError):
        while await asyncio.wait_for(reader.read(4096), 5):
            pass


async def test_blackhole_goes_silent_with_the_socket_open(
    proxy: FaultProxy, provider: Provider
) -> None:
    reader, writer = await open_lines(proxy, provider, "bh", rate=200, keepalive=0)
    await reader.readuntil(b"\n")
    proxy.blackhole(proxy.active[0])
    await asyncio.sleep(0.2)  # let what was in flight arrive
    while reader._buffer:  # type: ignore[attr-defined]
        await reader.read(65536)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.7)
    assert not writer.is_closing() and len(proxy.active) == 1
    writer.close()
    for _ in range(100):  # the client leaving still ends the proxied connection
        if not proxy.active:
            break
        await asyncio.sleep(0.01)
    assert proxy.active == []


async def test_trickle_delivers_one_byte_at_a_time(proxy: FaultProxy, provider: Provider) -> None:
    reader, _ = await open_lines(proxy, provider, "tr", rate=20, keepalive=0)
    await reader.readuntil(b"\n")
    proxy.trickle(proxy.active[0], 1.0)
    assert proxy.usable() == []  # slow now, though not broken
    assert proxy.history[0].impaired is None
    sizes = [len(await reader.read(4096)) for _ in range(30)]
    assert max(sizes[2:]) == 1  # after what was already buffered
    line = await asyncio.wait_for(reader.readuntil(b"\n"), 5)
    assert line.endswith(b"}\n")


async def test_respond_next_answers_with_a_status_and_retry_after(
    proxy: FaultProxy, provider: Provider
) -> None:
    proxy.respond_next(429, retry_after="7")
    async with aiohttp.ClientSession() as session:
        url = proxy.url(provider.url("sse", "rl", total=1))
        async with session.get(url) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "7"
        async with session.get(url) as resp:  # only the next one
            assert resp.status == 200
    assert proxy.refused == 1


async def test_refuse_for_refuses_then_listens_again_on_the_same_port(
    proxy: FaultProxy,
) -> None:
    port = proxy.port
    task = asyncio.create_task(proxy.refuse_for(0.5))
    await asyncio.sleep(0.1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await task
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


@pytest.mark.parametrize("code", [1001, 1011])
async def test_ws_close_sends_the_code_at_a_frame_boundary(
    proxy: FaultProxy, provider: Provider, code: int
) -> None:
    url = proxy.url(provider.url("ws", f"wsc{code}", rate=100))
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        first = await ws.receive()
        assert first.type is aiohttp.WSMsgType.TEXT
        await wait_active(proxy)
        closing = asyncio.create_task(proxy.ws_close(proxy.active[0], code))
        while (msg := await asyncio.wait_for(ws.receive(), 5)).type is aiohttp.WSMsgType.TEXT:
            assert msg.data.encode().startswith(b'{"id":')  # whole frames up to the close
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == code
        await closing


def test_url_keeps_path_query_and_credentials() -> None:
    proxy = FaultProxy("127.0.0.1", 1)
    proxy._port = 4242
    assert proxy.url("http://u:p@127.0.0.1:99/sse/f?x=1") == "http://u:p@127.0.0.1:4242/sse/f?x=1"
    assert proxy.url("ws://localhost/ws/f") == "ws://127.0.0.1:4242/ws/f"
