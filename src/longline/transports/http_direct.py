"""SSE and lines over a plain asyncio ``Protocol``: the GET by hand, the body decoded as it comes.

An idle stream read through aiohttp's ``ClientSession.get`` keeps, for its whole life, the
``ClientResponse`` with its headers, request info, response parser, ``StreamReader`` and the
reading task's pending futures: ~22 KB per idle stream against ~12 for ws (docs/benchmarks.md,
issue 14). As ``ws_direct`` does for WebSocket, this connection writes the request itself,
reads the status line and headers (``transports/handshake.py``), then decodes each read in the
protocol's callback (``core.httpbody``: chunked, ``Content-Length`` or until close; gzip and
deflate, which it asks for with ``Accept-Encoding`` as aiohttp does) and feeds the framer
(``core.sse`` or ``core.lines``); what it frames is pushed to the sink at once. The pump only
waits: for the end, or, when the sink is backlogged, for it to drain while the socket is not
read. Redirects (301, 302, 303, 307, 308) are followed as aiohttp follows them: up to 9, the
10th is an error, ``Authorization`` and ``Cookie`` dropped when the origin changes. Through a
proxy the environment names, ``stream.SSE`` and ``stream.LINES`` use aiohttp's client instead.
"""

from __future__ import annotations

import asyncio
from ssl import SSLContext
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict

from longline.core.errors import Cause, Outcome
from longline.core.httpbody import Body, BodyError
from longline.core.resume import ConnectRequest
from longline.transports.base import Connection, ConnectionEnded, Framer, Sink
from longline.transports.handshake import (
    CallbackReading,
    HeadProtocol,
    base_headers,
    body_for,
    body_head,
    exchange,
    get_request,
)
from longline.transports.http import describe, refused

MAX_REDIRECTS = 10  # as aiohttp's: the 10th redirect response is an error
REDIRECTS = frozenset((301, 302, 303, 307, 308))
ACCEPT_ENCODING = "gzip, deflate"  # what aiohttp asks for without brotli or zstd installed
_CREDENTIALS = ("Authorization", "Cookie", "Proxy-Authorization")  # not sent to another origin
END_OF_STREAM = "end of stream"


class _Protocol(HeadProtocol):
    """The socket's side: the head into ``buf``, then every read to the connection."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        super().__init__()
        self.conn: DirectStreamConnection | None = None

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            super().data_received(data)
        else:
            conn._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.conn is not None:
            self.conn._lost(exc)


class DirectStreamConnection(Connection, CallbackReading):
    """A GET whose response body is an endless stream of framed messages, without aiohttp's
    client objects. Subclasses say how to frame (``make_framer``)."""

    __slots__ = (
        "_backlogged",
        "_body",
        "_end",
        "_lost_exc",
        "_proto",
        "_sink",
        "_wake",
        "connect_timeout",
        "framer",
        "ssl",
    )

    def __init__(
        self,
        request: ConnectRequest,
        *,
        max_message_size: int,
        connect_timeout: float,
        ssl: SSLContext | bool = True,
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.connect_timeout = connect_timeout
        self.ssl = ssl
        self.framer = self.make_framer()
        self._proto: _Protocol | None = None
        self._body: Body | None = None
        self._sink: Sink | None = None
        self._end: Outcome | None = None  # why the body ended, once it did
        self._lost_exc: Exception | None = None
        self._backlogged = False  # reading paused until the sink drains
        self._wake: asyncio.Future[None] | None = None  # the pump's wait

    def make_framer(self) -> Framer:
        raise NotImplementedError

    def accept_header(self) -> str:
        """The ``Accept`` header sent."""
        return "*/*"

    # -- opening ---------------------------------------------------------------------------

    async def _open(self) -> None:
        url = self.request.url
        headers = CIMultiDict[str](self.request.headers)
        redirects = 0
        while True:
            proto, status, reason, head, rest = await self._get(url, headers)
            if status == 200:
                break
            location = head.get("Location") or head.get("URI")
            if status in REDIRECTS and location is not None:
                if proto.transport is not None:
                    proto.transport.close()
                redirects += 1
                if redirects >= MAX_REDIRECTS:
                    detail = f"too many redirects ({MAX_REDIRECTS})"
                    raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, detail))
                target = urljoin(url, location)
                if urlsplit(target).scheme not in ("http", "https"):
                    detail = "redirected to a URL that is not http or https"
                    raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, detail))
                if _origin(target) != _origin(url):
                    for name in _CREDENTIALS:
                        headers.popall(name, None)
                url = target
                continue
            try:
                body = await body_head(proto, head, rest)
            finally:
                if proto.transport is not None:
                    proto.transport.close()
            raise ConnectionEnded(refused(status, reason, head, body))
        try:
            self._body = body_for(head)
        except BodyError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, str(e))) from None
        proto.buf = bytearray(rest)  # body bytes that came with the head, fed by the pump

    async def _get(
        self, url: str, stream_headers: CIMultiDict[str]
    ) -> tuple[_Protocol, int, str, CIMultiDict[str], bytes]:
        """Connect to ``url``, send the GET, read the head (within ``connect_timeout``)."""
        parts = urlsplit(url)

        def request(host: str, port: int, secure: bool) -> bytes:
            headers = base_headers(host, port, secure)
            headers.update(
                {
                    "Accept": self.accept_header(),
                    "Accept-Encoding": ACCEPT_ENCODING,
                    "Cache-Control": "no-cache",
                }
            )
            headers.update(stream_headers)  # the stream's own replace any of the above
            return get_request(parts.path, parts.query, headers)

        return await exchange(_Protocol, parts, self.ssl, self.connect_timeout, request, self._made)

    def _made(self, proto: _Protocol) -> None:
        self._proto = proto

    # -- reading ---------------------------------------------------------------------------

    async def _pump(self, sink: Sink) -> Outcome:
        proto = self._proto
        assert proto is not None and proto.transport is not None
        self._sink = sink
        early, proto.buf = bytes(proto.buf), bytearray()
        proto.conn = self
        if early:
            self._received(early)
        if proto.eof and self._end is None:
            self._lost(self._lost_exc)
        loop = self.loop
        while self._end is None or self._backlogged:
            if self._backlogged:
                await sink.drained()
                self._backlogged = False
                self._decode(b"", more=True)  # what the decoder held back
                if not self._backlogged and self._end is None:
                    if proto.eof:
                        self._lost(self._lost_exc)
                    elif proto.transport is not None:
                        proto.transport.resume_reading()
                continue
            self._wake = loop.create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        return self.aborted or self._end or Outcome(Cause.NETWORK, None, None, "ended")

    def _received(self, data: bytes) -> None:
        """Protocol callback: one read, decoded, framed and pushed."""
        if self._end is not None:
            return
        self.last_rx = self.loop.time()
        self._decode(data)
        body = self._body
        if self._end is None and not self._backlogged and body is not None and body.done:
            self._finish(Outcome(Cause.CLOSED_BY_PEER, None, None, END_OF_STREAM))

    def _decode(self, data: bytes, *, more: bool = False) -> None:
        """Feed ``data`` (or, with ``more``, what the decoder held back) to the framer; stop
        reading the socket when the sink is backlogged."""
        body, sink = self._body, self._sink
        assert body is not None and sink is not None
        try:
            out = body.more() if more else body.feed(data)
            while out:
                self.rx_bytes += len(out)
                items = self.framer.feed(out)
                if items:
                    sink.push(items, self)
                    if sink.backlogged:
                        self._pause()
                        return
                out = body.more()
        except BodyError as e:
            self._finish(Outcome(Cause.NETWORK, None, None, f"ClientPayloadError: {e}"))
        except Exception as e:  # a framer's bug must end this connection, not the loop's
            self._finish(Outcome(Cause.NETWORK, None, None, describe(e)))
        if more and self._body is not None and body.done and self._end is None:
            self._finish(Outcome(Cause.CLOSED_BY_PEER, None, None, END_OF_STREAM))

    def _lost(self, exc: Exception | None) -> None:
        """Protocol callback: the connection closed (``exc``: why, None for a clean close)."""
        self._lost_exc = exc
        if self._end is not None or self._backlogged or self._sink is None:
            return  # before the pump: it sees ``eof``; while backlogged: after the drain
        if exc is not None:
            self._finish(Outcome(Cause.NETWORK, None, None, describe(exc)))
            return
        body = self._body
        assert body is not None
        try:
            body.finish()
        except BodyError as e:
            self._finish(Outcome(Cause.NETWORK, None, None, f"ClientPayloadError: {e}"))
            return
        self._finish(Outcome(Cause.CLOSED_BY_PEER, None, None, END_OF_STREAM))

    def _finish(self, outcome: Outcome) -> None:
        """The body ended: close the framer (an unfinished message is dropped) and the socket."""
        if self._end is not None:
            return
        self._end = outcome
        self.framer.close()
        proto = self._proto
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.close()
        self._wake_pump()

    # -- closing ---------------------------------------------------------------------------

    def _force_close(self) -> None:
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
        self._wake_pump()

    async def _close(self) -> None:
        proto = self._proto
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port
