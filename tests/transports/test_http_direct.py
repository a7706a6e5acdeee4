"""The direct sse/lines connection (``transports/http_direct.py``) against raw loopback servers
that write exact bytes: the request it sends, chunked bodies cut at awkward places,
Content-Length and close-delimited bodies, gzip and deflate, a body cut short, refusals with
their body head, redirects, backpressure, the SSE state, and https with a private CA."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from longline.core.errors import Cause, Outcome
from longline.core.model import Message
from longline.core.resume import ConnectRequest
from longline.testing.provider import Provider
from longline.testing.tls import PrivateCA, make_ca
from longline.transports.base import Connection, ConnectSpec, Item, NoOptions
from longline.transports.registry import REGISTRY
from longline.transports.stream import (
    DirectLinesConnection,
    DirectSSEConnection,
    LinesConnection,
    SSEConnection,
)
from longline.transports.tls import ssl_for

Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]
LINES = b'{"id":1}\n{"id":2}\n\r\n{"id":3}\n'


class ListSink:
    """Keeps what is pushed; ``hold`` makes it report a backlog until ``release``."""

    def __init__(self, hold: bool = False) -> None:
        self.items: list[Item] = []
        self.pushes = 0
        self.hold = hold
        self._drained = asyncio.Event()

    @property
    def backlogged(self) -> bool:
        return self.hold

    def push(self, items: Sequence[Item], conn: Connection) -> None:
        self.items.extend(items)
        self.pushes += 1

    async def drained(self) -> None:
        await self._drained.wait()

    def release(self) -> None:
        self.hold = False
        self._drained.set()

    @property
    def last_ticket(self) -> int:
        return len(self.items)

    def after_commit(self, ticket: int, fn: Callable[[], None]) -> None:
        fn()


class RawServer:
    """A loopback server answering each connection with the next script; keeps the heads."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/feed") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        script = self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]
        try:
            await script(head, writer)
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[asyncio.Server] = []

    async def start(*scripts: Script) -> RawServer:
        raw = RawServer(*scripts)
        raw.server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(raw.server)
        return raw

    yield start
    for server in servers:
        server.close()


def pieces(*parts: bytes, hold: bool = False) -> Script:
    """A script writing ``parts`` one read apart, then closing (or holding the socket)."""

    async def script(head: bytes, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.005)  # one read per part: the client sees the cuts
        if hold:
            await asyncio.sleep(3600)

    return script


def chunked(*payloads: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads) + b"0\r\n\r\n"


OK_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
OK_CHUNKED += b"Transfer-Encoding: chunked\r\n\r\n"


async def run(conn: Connection, sink: ListSink | None = None) -> tuple[list[Item], Outcome]:
    sink = sink or ListSink()
    outcome = await asyncio.wait_for(conn.run(sink), 10)
    return sink.items, outcome


def lines(url: str, headers: dict[str, str] | None = None) -> DirectLinesConnection:
    request = ConnectRequest(url=url, headers=headers or {})
    return DirectLinesConnection(request, max_message_size=1 << 20, connect_timeout=5.0)


def ids(items: list[Item]) -> list[bytes]:
    return [i.data if isinstance(i, Message) else i for i in items]  # type: ignore[misc]


async def test_the_request_carries_the_headers_aiohttp_sent(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    raw = await serve(pieces(OK_CHUNKED + chunked(b'{"id":1}\n')))
    sse = DirectSSEConnection(
        ConnectRequest(url=raw.url("/feed?since=3&x=%20y"), headers={"X-Token": "t-1"}),
        max_message_size=1 << 20,
        connect_timeout=5.0,
    )
    await run(sse)
    await run(lines(raw.url(), {"Accept": "application/x-ndjson", "User-Agent": "me/1"}))
    first, second = (h.decode("latin-1").split("\r\n") for h in raw.heads)
    assert first[0] == "GET /feed?since=3&x=%20y HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in first[1:] if line)
    assert fields["Host"] == f"127.0.0.1:{raw.port}"
    assert fields["Accept"] == "text/event-stream"
    assert fields["Accept-Encoding"] == "gzip, deflate"
    assert fields["Cache-Control"] == "no-cache"
    assert fields["X-Token"] == "t-1"
    assert fields["User-Agent"].startswith("Python/") and "aiohttp/" in fields["User-Agent"]
    fields = dict(line.split(": ", 1) for line in second[1:] if line)
    assert fields["Accept"] == "application/x-ndjson"  # the stream's own win
    assert fields["User-Agent"] == "me/1"


async def test_chunk_framing_cut_across_reads(serve: Callable[..., Awaitable[RawServer]]) -> None:
    body = chunked(b'{"id":1}\n{"i', b'd":2}\n\r\n', b'{"id":3}\n')
    # cut inside the head's end, a size line, a chunk, the CRLF after a chunk, the last chunk
    cuts = [OK_CHUNKED[:-1], OK_CHUNKED[-1:] + body[:1], body[1:5], body[5:20], body[20:26]]
    raw = await serve(pieces(*cuts, body[26:-3], body[-3:], hold=True))
    items, outcome = await run(lines(raw.url()))
    assert items == [b'{"id":1}', b'{"id":2}', b'{"id":3}']
    assert outcome == Outcome(Cause.CLOSED_BY_PEER, None, None, "end of stream")


async def test_content_length_ends_at_the_length(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(LINES)
    raw = await serve(pieces(head + LINES[:5], LINES[5:] + b'{"id":4}\n', hold=True))
    conn = lines(raw.url())
    items, outcome = await run(conn)
    assert items == [b'{"id":1}', b'{"id":2}', b'{"id":3}']  # not 4: after the length
    assert outcome.detail == "end of stream"
    assert conn.rx_bytes == len(LINES)


async def test_a_body_delimited_by_the_close(serve: Callable[..., Awaitable[RawServer]]) -> None:
    raw = await serve(pieces(b"HTTP/1.0 200 OK\r\n\r\n" + LINES[:3], LINES[3:] + b'{"cut'))
    items, outcome = await run(lines(raw.url()))
    assert items == [b'{"id":1}', b'{"id":2}', b'{"id":3}']  # the unfinished line dropped
    assert outcome == Outcome(Cause.CLOSED_BY_PEER, None, None, "end of stream")


async def test_a_chunked_body_cut_short_is_a_network_error(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    raw = await serve(pieces(OK_CHUNKED + b'9\r\n{"id":1}\n\r\n20\r\n{"id":2}\n'))
    items, outcome = await run(lines(raw.url()))
    assert items == [b'{"id":1}', b'{"id":2}']
    assert outcome.cause is Cause.NETWORK
    assert "Response payload is not completed" in outcome.detail


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate"])
async def test_gzip_and_deflate_bodies(
    serve: Callable[..., Awaitable[RawServer]], coding: str
) -> None:
    if coding == "gzip":
        coded = gzip.compress(LINES)
    else:
        coded = zlib.compress(LINES)[2:-4] if coding == "raw deflate" else zlib.compress(LINES)
    name = coding.split()[-1].encode()
    head = OK_CHUNKED[:-2] + b"Content-Encoding: " + name + b"\r\n\r\n"
    body = chunked(coded[:10], coded[10:])
    raw = await serve(pieces(head + body[:12], body[12:], hold=True))
    items, outcome = await run(lines(raw.url()))
    assert items == [b'{"id":1}', b'{"id":2}', b'{"id":3}']
    assert outcome.detail == "end of stream"


async def test_a_refusal_keeps_status_reason_retry_after_and_body_head(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    text = b"maintenance until noon, token s3cr3t " + b"x" * 300
    coded = gzip.compress(text)
    head = (
        b"HTTP/1.1 503 Slow Down\r\nRetry-After: 7\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    raw = await serve(pieces(head, chunked(coded[:20], coded[20:]), hold=True))
    outcome = await lines(raw.url()).probe()
    assert outcome is not None
    assert (outcome.cause, outcome.status, outcome.retry_after) == (Cause.RATE_LIMITED, 503, 7.0)
    body = text[:200].decode() + " ..."
    assert outcome.detail == f"HTTP 503 Slow Down: {body}"


async def test_redirects_are_followed_and_credentials_stay_with_their_origin(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    other = await serve(pieces(OK_CHUNKED + chunked(LINES)))
    there = f"http://localhost:{other.port}/moved"
    raw = await serve(
        pieces(b"HTTP/1.1 302 Found\r\nLocation: /second?a=1\r\nContent-Length: 0\r\n\r\n"),
        pieces(b"HTTP/1.1 307 Temporary\r\nLocation: " + there.encode() + b"\r\n\r\n"),
    )
    conn = lines(raw.url(), {"Authorization": "Bearer t", "X-Keep": "1"})
    items, outcome = await run(conn)
    assert items == [b'{"id":1}', b'{"id":2}', b'{"id":3}']
    assert outcome.detail == "end of stream"
    first, second = raw.heads
    assert second.startswith(b"GET /second?a=1 HTTP/1.1\r\n")
    assert b"Authorization: Bearer t" in first and b"Authorization: Bearer t" in second
    (third,) = other.heads
    assert third.startswith(b"GET /moved HTTP/1.1\r\n")
    assert b"Host: localhost:%d\r\n" % other.port in third
    assert b"Authorization" not in third and b"X-Keep: 1" in third  # another origin


async def test_too_many_redirects(serve: Callable[..., Awaitable[RawServer]]) -> None:
    raw = await serve(pieces(b"HTTP/1.1 301 Moved\r\nLocation: /again\r\n\r\n"))
    items, outcome = await run(lines(raw.url()))
    assert items == []
    assert outcome == Outcome(Cause.NETWORK, None, None, "too many redirects (10)")
    assert len(raw.heads) == 10  # as aiohttp: the 10th redirect is the error


async def test_a_backlogged_sink_pauses_reading_until_it_drains(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    first = OK_CHUNKED + chunked(b'{"id":1}\n')[:-5]  # without the last chunk
    raw = await serve(pieces(first, chunked(b'{"id":2}\n')))
    conn = lines(raw.url())
    sink = ListSink(hold=True)
    task = asyncio.create_task(conn.run(sink))
    while not sink.items:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the second part was sent meanwhile: not read
    transport = conn._proto.transport if conn._proto is not None else None
    assert transport is not None and not transport.is_reading()
    assert sink.items == [b'{"id":1}']
    sink.release()
    outcome = await asyncio.wait_for(task, 10)
    assert sink.items == [b'{"id":1}', b'{"id":2}']
    assert outcome.detail == "end of stream"


async def test_sse_state_survives_into_the_next_connection(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    events = b"retry: 1500\nid: 7\ndata: a\n\ndata: b\n\nid: 9\ndata: c\n\ndata: unfinished"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(events)
    raw = await serve(pieces(head + events))
    request = ConnectRequest(url=raw.url(), last_event_id="5", retry=300)
    conn = DirectSSEConnection(request, max_message_size=1 << 20, connect_timeout=5.0)
    assert conn.state == ("5", 300)
    items, outcome = await run(conn)
    assert outcome.detail == "end of stream"  # the unfinished event dropped
    assert [(m.data, m.id) for m in items if isinstance(m, Message)] == [
        (b"a", "7"),
        (b"b", "7"),
        (b"c", "9"),
    ]
    assert conn.state == ("9", 1500)
    assert b"Last-Event-ID" not in raw.heads[0]  # the header is the supervisor's (resume)


def test_the_direct_path_unless_a_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)

    async def made(kind: str, url: str) -> Connection:
        spec = ConnectSpec(
            session=None,  # type: ignore[arg-type]  # the direct path never touches it
            request=ConnectRequest(url=url),
            max_message_size=1000,
            connect_timeout=1.0,
            ping_interval=0.0,
            options=NoOptions(),
        )
        return REGISTRY.get(kind).connect(spec)

    async def check() -> None:
        assert type(await made("sse", "https://h/x")) is DirectSSEConnection
        assert type(await made("lines", "http://h/x")) is DirectLinesConnection
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        assert type(await made("sse", "https://h/x")) is SSEConnection
        assert type(await made("lines", "http://h/x")) is DirectLinesConnection  # http: none
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        assert type(await made("lines", "http://h/x")) is LinesConnection
        monkeypatch.setenv("NO_PROXY", "h")
        assert type(await made("lines", "http://h/x")) is DirectLinesConnection

    asyncio.run(check())


async def test_https_with_a_private_ca(tmp_path: Path) -> None:
    ca: PrivateCA = make_ca(tmp_path)
    provider = Provider(ssl_context=ca.server_context())
    await provider.start()
    try:
        url = provider.url("sse", "s", total=5)
        assert url.startswith("https://")
        request = ConnectRequest(url=url)

        class Tls:
            ca_file = str(ca.ca_file)
            cert_file = None
            key_file = None
            verify = True

        ssl = ssl_for(Tls())
        conn = DirectSSEConnection(request, max_message_size=1 << 20, connect_timeout=5.0, ssl=ssl)
        sink = ListSink()
        task = asyncio.create_task(conn.run(sink))
        while len(sink.items) < 5:  # then keep-alives only
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        done = Outcome(Cause.CLOSED_BY_PEER, None, None, "enough")
        conn.abort(done)
        outcome = await asyncio.wait_for(task, 10)
        unverified = await DirectSSEConnection(
            request, max_message_size=1 << 20, connect_timeout=5.0
        ).probe()
    finally:
        await provider.stop()
    assert [m.id for m in sink.items if isinstance(m, Message)] == ["1", "2", "3", "4", "5"]
    assert outcome is done
    assert unverified is not None and "certificate verify failed" in unverified.detail
