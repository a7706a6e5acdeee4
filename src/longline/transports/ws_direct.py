"""WebSocket over a plain asyncio ``Protocol``: the upgrade by hand, aiohttp's frame parser.

An idle connection made by aiohttp's ``ws_connect`` keeps ~18 KB of objects for its whole
life: the parsed handshake response and its headers, the request info, the response parser,
the ``ClientResponse``, a reader task (measured in docs/benchmarks.md). This connection sends the
upgrade request itself, reads the status line and headers, then hands every later byte to
aiohttp's own frame parser (``WebSocketReader``, compiled), so framing, permessage-deflate and
``max_message_size`` behave exactly as with ``ws_connect``, in ~4 KB per idle connection.
Frames we send (subscribe messages, pings, pongs, close) are small and go out masked and
uncompressed, which permessage-deflate allows. Behaviour matches ``ws.WSConnection``: every
frame is liveness, server pings are answered with their payload, our pings come from a timer,
text stays bytes. As in ``http_direct``, each read is parsed and what it carried is pushed in the
protocol's callback: the parser hands messages to ``_Inbox`` instead of aiohttp's queue, so no
message waits for a task to read it (that await per message was most of the client's cost,
docs/benchmarks.md); the pump only waits, for the end or for a backlogged sink to drain while
the socket is not read. Through a proxy, ``ws.WS`` uses the aiohttp connection instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import struct
from ssl import SSLContext
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp._websocket.helpers import websocket_mask
from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
from aiohttp.http_websocket import WS_KEY, WebSocketError, WSHandshakeError, ws_ext_parse
from multidict import CIMultiDict

from longline.core.errors import Cause, Outcome
from longline.core.model import Oversized
from longline.core.resume import ConnectRequest
from longline.transports.base import ConnectionEnded, MessageConnection, Sink
from longline.transports.handshake import (
    CallbackReading,
    HeadProtocol,
    base_headers,
    body_head,
    exchange,
    get_request,
)
from longline.transports.http import describe, refused

TOO_BIG = re.compile(r"size (\d+) exceeds")
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
_TYPES = aiohttp.WSMsgType
_DATA = (_TYPES.TEXT, _TYPES.BINARY)


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked, uncompressed client frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    mask = os.urandom(4)
    data = bytearray(payload)
    websocket_mask(mask, data)
    return head + mask + data


class _Inbox(WebSocketDataQueue):
    """Where aiohttp's frame parser puts each message: on the connection's queue at once.

    The parser calls ``feed_data`` (a ``cpdef`` method, so a Python override is called) for
    every message while it parses a read. The base ``__init__`` is not run: it would make a
    deque, a waiter and flow-control state that nothing here reads (~1 KB per idle stream);
    with its size and limit left at 0 the parser never stalls, and this connection's own
    backpressure (``pause_reading`` while the sink is backlogged) bounds what is read.
    """

    __slots__ = ("conn",)
    # What aiohttp's pure-Python reader (``AIOHTTP_NO_EXTENSIONS=1``) reads of a queue; the
    # compiled one reads the base's C fields, which start at 0 and None.
    _size = _limit = 0
    _stalled_reader = _waiter = _exception = None

    def __init__(self, conn: DirectWSConnection) -> None:  # the base __init__ is not run
        self.conn = conn

    def feed_data(self, data: Any, size: int) -> None:
        conn = self.conn
        if data[0] in _DATA:  # a WSMessage tuple: (type, payload, extra)
            if conn._end is None:
                conn.rx_bytes += size
                conn._queued.append(data[1])
        else:
            conn._control(data[0], data[1])


class _Protocol(HeadProtocol):
    """The socket's side: bytes into the handshake buffer, then into aiohttp's parser."""

    __slots__ = ("conn", "reader")

    def __init__(self) -> None:
        super().__init__()
        self.reader: WebSocketReader | None = None
        self.conn: DirectWSConnection | None = None

    def data_received(self, data: bytes) -> None:
        conn, reader = self.conn, self.reader
        if conn is None or reader is None:
            super().data_received(data)
        elif conn._end is None:
            error, _ = reader.feed_data(data)
            conn._after_read(error)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.conn is not None:
            self.conn._lost(exc)


class DirectWSConnection(MessageConnection, CallbackReading):
    """One WebSocket connection without aiohttp's client objects."""

    __slots__ = (
        "_backlogged",
        "_end",
        "_inbox",
        "_open_done",
        "_ping_timer",
        "_pings",
        "_proto",
        "_wake",
        "compression",
        "connect_timeout",
        "ping_interval",
        "ssl",
    )

    def __init__(
        self,
        request: ConnectRequest,
        *,
        max_message_size: int,
        connect_timeout: float,
        ping_interval: float | None,
        ssl: SSLContext | bool = True,
        compression: bool = True,
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.ssl = ssl
        self.compression = compression  # offer permessage-deflate
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._proto: _Protocol | None = None
        self._inbox: _Inbox | None = None
        self._open_done = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pings = 0
        self._end: Outcome | None = None  # why the connection ended, once it did
        self._backlogged = False  # reading paused until the sink drains
        self._wake: asyncio.Future[None] | None = None  # the pump's wait

    async def _open(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()

        def request(host: str, port: int, secure: bool) -> bytes:
            return self._upgrade_request(host, port, secure, key)

        proto, status, _, headers, rest = await exchange(
            _Protocol, urlsplit(self.request.url), self.ssl, self.connect_timeout, request,
            self._made,
        )  # fmt: skip
        if status != 101:
            body = await body_head(proto, headers, rest)
            raise ConnectionEnded(refused(status, None, headers, body))
        self._upgrade(proto, headers, key, rest)
        assert proto.transport is not None
        for text in self.request.subscribe:
            proto.transport.write(frame(_TEXT, text.encode()))
        if self.ping_interval:
            self._ping_timer = self.loop.call_later(self.ping_interval, self._ping_due)

    def _made(self, proto: _Protocol) -> None:
        self._proto = proto

    def _upgrade_request(self, host: str, port: int, secure: bool, key: str) -> bytes:
        url = urlsplit(self.request.url)
        headers = base_headers(host, port, secure)
        headers.update(self.request.headers)  # the stream's own may replace the two above
        headers.update(
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
            }
        )
        if self.compression:
            headers["Sec-WebSocket-Extensions"] = "permessage-deflate; client_max_window_bits"
        return get_request(url.path, url.query, headers)

    def _upgrade(self, proto: _Protocol, headers: CIMultiDict[str], key: str, rest: bytes) -> None:
        """Check the 101 answer and hand the socket to aiohttp's frame parser."""
        expected = base64.b64encode(hashlib.sha1(key.encode() + WS_KEY).digest()).decode()
        if (
            headers.get("Upgrade", "").lower() != "websocket"
            or "upgrade" not in headers.get("Connection", "").lower()
            or headers.get("Sec-WebSocket-Accept", "") != expected
        ):
            raise ConnectionEnded(
                Outcome(Cause.NETWORK, None, None, "invalid WebSocket handshake response")
            )
        try:
            compress, _ = ws_ext_parse(headers.get("Sec-WebSocket-Extensions"))
            if compress and not self.compression:
                raise WSHandshakeError("the server chose permessage-deflate, not offered")
        except WSHandshakeError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, describe(e))) from None
        inbox = self._inbox = _Inbox(self)
        proto.reader = WebSocketReader(
            inbox, self.max_message_size, compress=bool(compress), decode_text=False
        )
        proto.buf = bytearray()
        proto.conn = self
        self._open_done = True
        if rest:
            proto.data_received(rest)  # queued: pushed when the pump starts
        if proto.eof:
            self._lost(None)

    # -- reading (protocol callbacks) ------------------------------------------------------

    def _after_read(self, error: bool) -> None:
        """One read was parsed: its messages are queued; push them, mind the backlog."""
        self.last_rx = self.loop.time()
        if error:
            self._failed()
        self._push_read()

    def _push_read(self) -> None:
        """Push the queued messages (once the pump has a sink); stop reading if that leaves
        the sink backlogged."""
        sink = self._sink
        if sink is not None and self._queued:
            self._push_queued()
            if sink.backlogged and self._end is None:
                self._pause()

    def _control(self, kind: Any, data: Any) -> None:
        """A control frame: a ping is answered with its payload, a close ends the connection."""
        proto = self._proto
        transport = proto.transport if proto is not None else None
        if transport is None or self._end is not None:
            return
        if kind is _TYPES.PING:
            transport.write(frame(_PONG, data))
        elif kind is _TYPES.CLOSE:
            if not transport.is_closing():
                transport.write(frame(_CLOSE, struct.pack("!H", data or 1000)))
                transport.close()
            detail = f"closed by peer (code {data})" if data else "connection closed"
            self._finish(Outcome(Cause.CLOSED_BY_PEER, None, None, detail))

    def _failed(self) -> None:
        """The parser refused a frame: close with its code (1009, 1002, ...) as RFC 6455 asks."""
        error = self._inbox.exception() if self._inbox is not None else None
        proto = self._proto
        transport = proto.transport if proto is not None else None
        if isinstance(error, WebSocketError):
            if transport is not None and not transport.is_closing():
                transport.write(frame(_CLOSE, struct.pack("!H", error.code)))
                transport.close()
            self._finish(self._error_outcome(error))
        else:
            if transport is not None:
                transport.close()
            self._finish(Outcome(Cause.NETWORK, None, None, describe(error or Exception())))

    def _lost(self, exc: Exception | None) -> None:
        """The socket closed: a clean close without a close frame, or an error."""
        if exc is None:
            self._finish(Outcome(Cause.CLOSED_BY_PEER, None, None, "connection closed"))
        else:
            self._finish(Outcome(Cause.NETWORK, None, None, describe(exc)))

    def _finish(self, outcome: Outcome) -> None:
        if self._end is None:
            self._end = outcome
            self._wake_pump()

    def _ping_due(self) -> None:
        """Timer callback: send one ping and schedule the next."""
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return
        self._pings += 1
        proto.transport.write(frame(_PING, str(self._pings).encode()))
        if self.ping_interval:
            self._ping_timer = self.loop.call_later(self.ping_interval, self._ping_due)

    async def _pump(self, sink: Sink) -> Outcome:
        proto = self._proto
        assert proto is not None and proto.transport is not None
        self._sink = sink
        try:
            self._push_read()  # what was parsed before the pump started
            while self._end is None or self._backlogged:
                if self._backlogged:
                    await sink.drained()
                    self._backlogged = False
                    if self._end is None and proto.transport is not None:
                        proto.transport.resume_reading()
                    continue
                self._wake = self.loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
        finally:
            self._push_queued()
        return self.aborted or self._end or Outcome(Cause.NETWORK, None, None, "ended")

    def _error_outcome(self, error: WebSocketError) -> Outcome:
        text = str(error)
        match = TOO_BIG.search(text)
        if match is not None or error.code == 1009:
            size = int(match.group(1)) if match else self.max_message_size + 1
            self._queued.append(Oversized(size))  # after what came before it
            return Outcome(Cause.TOO_BIG, None, None, "message too big (1009)")
        return Outcome(Cause.NETWORK, None, None, describe(error))

    def _force_close(self) -> None:
        proto = self._proto
        if proto is not None and proto.transport is not None:
            proto.transport.abort()
        self._wake_pump()

    async def _close(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return
        if self._open_done:
            proto.transport.write(frame(_CLOSE, struct.pack("!H", 1000)))
        proto.transport.close()
