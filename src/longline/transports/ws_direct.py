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
text stays bytes, messages already parsed are pushed together. Through a proxy, ``ws.WS`` uses
the aiohttp connection instead.
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
    HeadProtocol,
    base_headers,
    body_head,
    exchange,
    get_request,
)
from longline.transports.http import describe, refused

TOO_BIG = re.compile(r"size (\d+) exceeds")
_QUEUE_LIMIT = 2**16  # parsed bytes held before the socket stops being read (as aiohttp)
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
_TYPES = aiohttp.WSMsgType


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


class _Protocol(HeadProtocol):
    """The socket's side: bytes into the handshake buffer, then into aiohttp's parser."""

    __slots__ = ("_reading_paused", "failed", "queue", "reader")

    def __init__(self) -> None:
        super().__init__()
        self.reader: WebSocketReader | None = None
        self.queue: WebSocketDataQueue | None = None  # where the reader puts messages
        self.failed = False  # the parser refused a frame: its error is queued
        self._reading_paused = False  # read by WebSocketDataQueue

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            super().data_received(data)
            return
        if self.failed:
            return
        error, _ = reader.feed_data(data)
        if error:  # the error is queued; the pump closes with its code (1009, 1002, ...)
            self.failed = True
            self.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        queue = self.queue
        if queue is None or self.failed:
            return  # a parser error stays the queue's answer (feed_eof would drop it)
        if exc is None:
            queue.feed_eof()
        else:
            queue.set_exception(exc)

    def pause_reading(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()


class DirectWSConnection(MessageConnection):
    """One WebSocket connection without aiohttp's client objects."""

    __slots__ = (
        "_open_done",
        "_ping_timer",
        "_pings",
        "_proto",
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
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.ssl = ssl
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._proto: _Protocol | None = None
        self._open_done = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pings = 0

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
                "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            }
        )
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
        except WSHandshakeError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, describe(e))) from None
        queue = WebSocketDataQueue(proto, _QUEUE_LIMIT, loop=self.loop)  # type: ignore[arg-type]
        proto.queue = queue
        proto.reader = WebSocketReader(
            queue, self.max_message_size, compress=bool(compress), decode_text=False
        )
        proto.buf = bytearray()
        self._open_done = True
        if rest:
            proto.data_received(rest)

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
        self._sink = sink
        proto = self._proto
        assert proto is not None and proto.queue is not None and proto.transport is not None
        read = proto.queue.read
        transport = proto.transport
        loop = self.loop
        queued = self._queued
        burst = self.BURST
        text, binary = _TYPES.TEXT, _TYPES.BINARY
        try:
            while True:
                try:
                    msg: Any = await read()
                except aiohttp.EofStream:
                    return self.aborted or Outcome(
                        Cause.CLOSED_BY_PEER, None, None, "connection closed"
                    )
                except WebSocketError as e:
                    if not transport.is_closing():  # as RFC 6455 asks: say why
                        transport.write(frame(_CLOSE, struct.pack("!H", e.code)))
                        transport.close()
                    return self.aborted or self._error_outcome(e)
                except (OSError, aiohttp.ClientError) as e:
                    return self.aborted or Outcome(Cause.NETWORK, None, None, describe(e))
                self.last_rx = loop.time()
                kind = msg.type
                if kind is text or kind is binary:
                    self.rx_bytes += len(msg.data)
                    if self._queued is not queued:  # pushed by the callback meanwhile
                        queued = self._queued
                    queued.append(msg.data)
                    if len(queued) >= burst or sink.backlogged:
                        if self._push_soon is not None:
                            self._push_soon.cancel()
                        self._push_queued()
                        queued = self._queued
                        if sink.backlogged:
                            await sink.drained()
                    elif self._push_soon is None:
                        self._push_soon = loop.call_soon(self._push_queued)
                elif kind is _TYPES.PING:
                    transport.write(frame(_PONG, msg.data))
                elif kind is _TYPES.PONG:
                    continue
                elif kind is _TYPES.CLOSE:
                    code = msg.data
                    if not transport.is_closing():
                        transport.write(frame(_CLOSE, struct.pack("!H", code or 1000)))
                        transport.close()
                    detail = f"closed by peer (code {code})" if code else "connection closed"
                    return self.aborted or Outcome(Cause.CLOSED_BY_PEER, None, None, detail)
        finally:
            if self._push_soon is not None:
                self._push_soon.cancel()
            self._push_queued()

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

    async def _close(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return
        if self._open_done:
            proto.transport.write(frame(_CLOSE, struct.pack("!H", 1000)))
        proto.transport.close()
