"""The local provider, driven by a real aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

import longline
from longline.cli.provider import provider_command
from longline.testing.provider import Provider, event_bytes
from longline.testing.provider_feeds import FeedParams, parse_params

KEEPALIVE_SSE = b": keep-alive\n\n"


def sse(feed: str, ids: Iterable[int], size: int = 200) -> bytes:
    return b"".join(
        b"id: %d\nevent: tick\ndata: %b\n\n" % (n, event_bytes(feed, n, size)) for n in ids
    )


def lines(feed: str, ids: Iterable[int], size: int = 200) -> bytes:
    return b"".join(event_bytes(feed, n, size) + b"\n" for n in ids)


@pytest.fixture(autouse=True)
def no_warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Clients vanishing at any moment must not put tracebacks in the server's logs."""
    caplog.set_level(logging.WARNING)
    yield
    logged = caplog.get_records("setup") + caplog.get_records("call")
    assert [r.getMessage() for r in logged if r.levelno >= logging.WARNING] == []


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with Provider() as p:
        yield p


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def read_all(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[bytes, BaseException | None]:
    """The whole body until EOF, and the error that ended it, if any."""
    body = b""
    try:
        async with client.get(url, headers=headers) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_any():
                body += chunk
    except aiohttp.ClientPayloadError as exc:
        return body, exc
    return body, None


async def read_n(
    client: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str] | None = None
) -> bytes:
    """Exactly ``n`` bytes of the body, then hang up (for feeds that stay open)."""
    async with client.get(url, headers=headers) as resp:
        assert resp.status == 200
        async with asyncio.timeout(5):
            return await resp.content.readexactly(n)


async def ws_texts(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[bytes]:
    out = []
    async with asyncio.timeout(5):
        for _ in range(n):
            msg = await ws.receive()
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
            out.append(msg.data.encode() if isinstance(msg.data, str) else msg.data)
    return out


# --- events and URLs ---------------------------------------------------------------------------


def test_parameter_defaults_per_transport() -> None:
    assert parse_params({}, "sse") == FeedParams(keepalive=1.0)
    assert parse_params({}, "ws").keepalive == 0.0
    parsed = parse_params({"abrupt": "true", "rate": "2.5", "retry_after": "7"}, "lines")
    assert (parsed.abrupt, parsed.rate, parsed.retry_after) == (True, 2.5, "7")


def test_event_bytes_are_deterministic_sized_json() -> None:
    one = event_bytes("f", 7, 300)
    assert one == event_bytes("f", 7, 300)
    assert len(one) == 300
    parsed = orjson.loads(one)
    assert (parsed["id"], parsed["feed"], parsed["ts"]) == (7, "f", 1_700_000_000.007)
    assert event_bytes("f", 8, 300) != one
    assert orjson.loads(event_bytes("f", 7, 10))["data"] == ""


async def test_url_builds_query_and_scheme(provider: Provider) -> None:
    port = provider.port
    assert provider.url("sse", total=100, disconnect_every=10) == (
        f"http://127.0.0.1:{port}/sse/default?total=100&disconnect_every=10"
    )
    assert provider.url("ws", "t", binary=True) == f"ws://127.0.0.1:{port}/ws/t?binary=1"
    assert provider.url("lines", "x") == f"http://127.0.0.1:{port}/lines/x"
    with pytest.raises(ValueError, match="bogus"):
        provider.url("lines", bogus=1)
    with pytest.raises(ValueError, match="transport"):
        provider.url("grpc")


async def test_bad_parameters_get_400(provider: Provider, client: aiohttp.ClientSession) -> None:
    base = provider.url("lines", "bad")
    async with client.get(base + "?bogus=1") as resp:
        assert (resp.status, await resp.text()) == (400, "unknown query parameter 'bogus'")
    async with client.get(base + "?total=-3") as resp:
        assert (resp.status, await resp.text()) == (
            400,
            "bad value for query parameter 'total': '-3'",
        )
    assert "bad" not in provider.stats


# --- each transport delivers exactly 1..N --------------------------------------------------------


async def test_sse_delivers_exact_events(provider: Provider, client: aiohttp.ClientSession) -> None:
    expected = sse("s", range(1, 6), 250)
    url = provider.url("sse", "s", total=5, size=250, keepalive=0)
    async with client.get(url) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        async with asyncio.timeout(5):
            assert await resp.content.readexactly(len(expected)) == expected
        with pytest.raises(TimeoutError):  # total reached: open, but nothing more
            async with asyncio.timeout(0.2):
                await resp.content.readany()
    assert provider.stats["s"].events_sent == 5
    assert provider.stats["s"].max_id_sent == 5


async def test_lines_deliver_exact_events(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    expected = lines("l", range(1, 2001))
    body = await read_n(client, provider.url("lines", "l", total=2000), len(expected))
    assert body == expected


async def test_ws_delivers_exact_events_compressed(provider: Provider) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(provider.url("ws", "w", total=300), compress=15) as ws,
    ):
        assert ws.compress == 15  # permessage-deflate negotiated
        assert await ws_texts(ws, 300) == [event_bytes("w", n) for n in range(1, 301)]


async def test_ws_deflate_0_refuses_compression(provider: Provider) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(provider.url("ws", "nd", total=3, deflate=0), compress=15) as ws,
    ):
        assert ws.compress == 0  # offered, not accepted
        assert await ws_texts(ws, 3) == [event_bytes("nd", n) for n in range(1, 4)]


async def test_ws_binary_frames(provider: Provider, client: aiohttp.ClientSession) -> None:
    async with client.ws_connect(provider.url("ws", "b", total=2, binary=1)) as ws:
        msgs = [await ws.receive(timeout=5) for _ in range(2)]
    assert [(m.type, m.data) for m in msgs] == [
        (aiohttp.WSMsgType.BINARY, event_bytes("b", 1)),
        (aiohttp.WSMsgType.BINARY, event_bytes("b", 2)),
    ]


# --- resume ------------------------------------------------------------------------------------


async def test_sse_resumes_from_last_event_id(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    expected = sse("r", [4, 5])
    url = provider.url("sse", "r", total=5, since=1)  # the header wins over the query
    assert await read_n(client, url, len(expected), {"Last-Event-ID": "3"}) == expected


async def test_lines_resume_with_since(provider: Provider, client: aiohttp.ClientSession) -> None:
    expected = lines("r", [4, 5])
    assert await read_n(client, provider.url("lines", "r", total=5, since=3), 2 * 201) == expected


async def test_resumable_0_ignores_resume_hints(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("sse", "r", total=2, since=1, resumable=0)
    expected = sse("r", [1, 2])
    assert await read_n(client, url, len(expected), {"Last-Event-ID": "1"}) == expected


async def test_ws_resumes_with_since_query(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    async with client.ws_connect(provider.url("ws", "r", total=5, since=3)) as ws:
        assert await ws_texts(ws, 2) == [event_bytes("r", 4), event_bytes("r", 5)]


async def test_ws_subscribe_1_waits_for_the_subscribe_message(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("ws", "r", total=5, subscribe=1)
    async with client.ws_connect(url) as ws:
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)
        await ws.send_str('{"op":"subscribe","since":"3"}')
        assert await ws_texts(ws, 2) == [event_bytes("r", 4), event_bytes("r", 5)]
    async with client.ws_connect(url) as ws:
        await ws.send_str('{"op":"subscribe","since":""}')  # no cursor yet: from the start
        assert await ws_texts(ws, 1) == [event_bytes("r", 1)]
    url = provider.url("ws", "r", total=5, subscribe=1, resumable=0)
    async with client.ws_connect(url) as ws:
        await ws.send_str('{"op":"subscribe","since":3}')
        assert await ws_texts(ws, 1) == [event_bytes("r", 1)]


async def test_paced_feed_is_live_unless_resumed(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("lines", "p", rate=20, keepalive=0)
    first = await read_n(client, url, 2 * 201)
    assert first == lines("p", [1, 2])  # the first connection starts the feed's clock
    await asyncio.sleep(0.5)  # >= 10 more events published meanwhile
    later = orjson.loads((await read_n(client, url, 201))[:-1])["id"]
    assert later >= 2 + 10
    resumed = await read_n(client, provider.url("lines", "p", rate=20, since=2), 3 * 201)
    assert resumed == lines("p", [3, 4, 5])  # catch-up from the cursor


async def test_ws_late_subscribe_repositions_the_stream(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("ws", "q", rate=2)  # one event every 0.5 s
    async with client.ws_connect(url) as ws:
        await asyncio.sleep(0.6)  # clock started; event 2 is due at 1.0 s
    async with client.ws_connect(url) as ws:
        await ws.send_str('{"op":"subscribe","since":0}')
        assert await ws_texts(ws, 1) == [event_bytes("q", 1)]


# --- connection-ending faults ------------------------------------------------------------------


async def test_disconnect_every_closes_cleanly_then_resume_continues(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    assert await read_all(client, provider.url("lines", "d", disconnect_every=4)) == (
        lines("d", range(1, 5)),
        None,
    )
    body, err = await read_all(client, provider.url("lines", "d", disconnect_every=4, since=4))
    assert (body, err) == (lines("d", range(5, 9)), None)
    assert provider.stats["d"].connections == 2


async def test_disconnect_every_abrupt_truncates_the_stream(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    body, err = await read_all(client, provider.url("sse", "d", disconnect_every=3, abrupt=1))
    assert body == sse("d", range(1, 4))
    assert isinstance(err, aiohttp.ClientPayloadError)


async def test_ws_disconnect_every_normal_and_abrupt(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    async with client.ws_connect(provider.url("ws", "d", disconnect_every=2)) as ws:
        assert await ws_texts(ws, 2) == [event_bytes("d", 1), event_bytes("d", 2)]
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1000
    async with client.ws_connect(provider.url("ws", "d", disconnect_every=2, abrupt=1)) as ws:
        assert await ws_texts(ws, 2) == [event_bytes("d", 1), event_bytes("d", 2)]
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert ws.close_code == 1006  # no close frame was sent


async def test_cut_every_sends_half_an_event(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    body, err = await read_all(client, provider.url("lines", "c", cut_every=3))
    line4 = lines("c", [4])
    assert body == lines("c", range(1, 4)) + line4[: len(line4) // 2]
    assert isinstance(err, aiohttp.ClientPayloadError)
    body, err = await read_all(client, provider.url("sse", "c", cut_every=2))
    event3 = sse("c", [3])
    assert body == sse("c", [1, 2]) + event3[: len(event3) // 2]
    assert isinstance(err, aiohttp.ClientPayloadError)


async def test_ws_cut_every_leaves_a_partial_frame(provider: Provider) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", provider.port)
    writer.write(
        b"GET /ws/c?cut_every=2&size=300 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with asyncio.timeout(5):
        raw = await reader.read(-1)  # until EOF
    writer.close()
    head, _, frames = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")

    def frame(n: int) -> bytes:
        return b"\x81\x7e\x01\x2c" + event_bytes("c", n, 300)  # FIN+text, 16-bit length 300

    assert frames == frame(1) + frame(2) + frame(3)[: 4 + 150]


async def test_stall_after_goes_silent_but_stays_open(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("lines", "st", stall_after=2, keepalive=0.1)
    async with client.get(url) as resp:
        async with asyncio.timeout(5):
            assert await resp.content.readexactly(2 * 201) == lines("st", [1, 2])
        with pytest.raises(TimeoutError):  # no keep-alives either
            async with asyncio.timeout(1.2):
                await resp.content.readany()
        assert not resp.content.at_eof()
        assert provider.open_connections == 1
    async with asyncio.timeout(5):  # the client went away: the server lets go too
        while provider.open_connections:
            await asyncio.sleep(0.02)


async def test_ws_stall_stops_answering_pings(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("ws", "st", stall_after=1)
    async with client.ws_connect(url, autoping=False) as ws:
        assert await ws_texts(ws, 1) == [event_bytes("st", 1)]
        await ws.ping(b"are you there")
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=1.2)
        assert provider.open_connections == 1
    async with asyncio.timeout(5):
        while provider.open_connections:
            await asyncio.sleep(0.02)


async def test_lifetime_closes_each_connection(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("lines", "lt", total=3, lifetime=0.3, keepalive=0)
    assert await read_all(client, url) == (lines("lt", [1, 2, 3]), None)
    url = provider.url("lines", "lt", total=3, lifetime=0.3, keepalive=0, abrupt=1)
    body, err = await read_all(client, url)
    assert (body, isinstance(err, aiohttp.ClientPayloadError)) == (lines("lt", [1, 2, 3]), True)
    async with client.ws_connect(provider.url("ws", "lt", total=1, lifetime=0.3)) as ws:
        assert await ws_texts(ws, 1) == [event_bytes("lt", 1)]
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001


# --- refusals ----------------------------------------------------------------------------------


async def test_fail_first_answers_status_with_retry_after(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("lines", "ff", total=1, fail_first=2, fail_status=429, retry_after=1)
    for _ in range(2):
        async with client.get(url) as resp:
            assert (resp.status, resp.headers["Retry-After"]) == (429, "1")
    assert await read_n(client, url, 201) == lines("ff", [1])
    stats = provider.stats["ff"]
    assert (stats.refused, stats.connections) == (2, 1)


async def test_ws_fail_first_default_503(provider: Provider, client: aiohttp.ClientSession) -> None:
    url = provider.url("ws", "ff", total=1, fail_first=1)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(url)
    assert info.value.status == 503
    async with client.ws_connect(url) as ws:
        assert await ws_texts(ws, 1) == [event_bytes("ff", 1)]


async def test_status_refuses_every_attempt(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        async with client.get(provider.url("sse", "no", status=401)) as resp:
            assert (resp.status, "Retry-After" in resp.headers) == (401, False)
    assert (provider.stats["no"].refused, provider.stats["no"].connections) == (3, 0)


# --- bad items and keep-alives -----------------------------------------------------------------


async def test_malformed_and_oversize_items(
    provider: Provider, client: aiohttp.ClientSession
) -> None:
    url = provider.url("lines", "m", total=6, malformed_every=3, keepalive=0)
    bad = b"{not json\n"
    expected = lines("m", [1, 2, 3]) + bad + lines("m", [4, 5, 6]) + bad
    assert await read_n(client, url, len(expected)) == expected
    url = provider.url("sse", "m", total=2, malformed_every=2, keepalive=0)
    expected = sse("m", [1, 2]) + b"data: {not json\n\n"
    assert await read_n(client, url, len(expected)) == expected
    url = provider.url("lines", "o", total=2, oversize_every=2, oversize_bytes=1000)
    body = await read_n(client, url, 2 * 201 + 1001)
    assert body[: 2 * 201] == lines("o", [1, 2])
    assert orjson.loads(body[2 * 201 :]) == {"oversize": "x" * 985}
    assert (provider.stats["m"].malformed_sent, provider.stats["o"].oversize_sent) == (3, 1)


async def test_ws_malformed_text(provider: Provider, client: aiohttp.ClientSession) -> None:
    url = provider.url("ws", "m", total=2, malformed_every=1, binary=1)
    async with client.ws_connect(url) as ws:
        msgs = [await ws.receive(timeout=5) for _ in range(4)]
    assert [(m.type, m.data) for m in msgs] == [
        (aiohttp.WSMsgType.BINARY, event_bytes("m", 1)),
        (aiohttp.WSMsgType.TEXT, "{not json"),
        (aiohttp.WSMsgType.BINARY, event_bytes("m", 2)),
        (aiohttp.WSMsgType.TEXT, "{not json"),
    ]


async def test_keepalives_while_idle(provider: Provider, client: aiohttp.ClientSession) -> None:
    expected = sse("k", [1]) + KEEPALIVE_SSE * 2
    url = provider.url("sse", "k", total=1, keepalive=0.1)
    assert await read_n(client, url, len(expected)) == expected
    expected = lines("k", [1]) + b"\r\n" * 3
    assert await read_n(client, provider.url("lines", "k", total=1, keepalive=0.1), 207) == expected
    url = provider.url("ws", "k", total=1, keepalive=0.1)
    async with client.ws_connect(url, autoping=False) as ws:
        assert await ws_texts(ws, 1) == [event_bytes("k", 1)]
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.PING


# --- stats, stop, CLI --------------------------------------------------------------------------


async def test_stats_count_repeats(provider: Provider, client: aiohttp.ClientSession) -> None:
    for _ in range(2):
        assert await read_all(client, provider.url("lines", "rep", disconnect_every=3)) == (
            lines("rep", [1, 2, 3]),
            None,
        )
    stats = provider.stats["rep"]
    assert (stats.connections, stats.events_sent, stats.max_id_sent) == (2, 6, 3)


async def test_stop_ends_open_connections(client: aiohttp.ClientSession) -> None:
    provider = Provider()
    await provider.start()
    stalled = await client.get(provider.url("lines", "x", stall_after=1))
    ws = await client.ws_connect(provider.url("ws", "y"))
    assert await ws_texts(ws, 1) == [event_bytes("y", 1)]
    async with asyncio.timeout(3):
        await provider.stop()
        assert provider.open_connections == 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await stalled.content.read()
        while (await ws.receive()).type not in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            pass
    stalled.release()
    await ws.close()


def test_cli_refuses_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(provider_command, ["--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_cli_prints_its_port_and_stops_on_signal(
    client: aiohttp.ClientSession, sig: signal.Signals
) -> None:
    src = str(Path(longline.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "longline",
        "provider",
        "--port",
        "0",
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode()
        match = re.fullmatch(r"longline provider listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match is not None, line
        url = f"http://127.0.0.1:{match[1]}/lines/cli?total=2"
        expected = lines("cli", [1, 2])
        assert await read_n(client, url, len(expected)) == expected
        proc.send_signal(sig)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
        assert await proc.stdout.read() == b""  # exactly one line was printed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
