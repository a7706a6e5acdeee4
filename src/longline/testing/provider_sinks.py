"""How each transport of the local provider writes events, faults and endings.

A cut or an abrupt close writes straight to the TCP transport and closes it, so the client sees
exactly what a dying provider leaves behind: half an event, no chunk terminator, no close frame.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WSHandshakeError, ws_ext_parse

from longline.testing.provider_feeds import MALFORMED

CLOSE_TIMEOUT = 1.0  # a graceful close that the peer does not let finish becomes an abrupt one


def _drop(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()  # flushes what is buffered, then FIN: the peer sees a truncated stream


def frame_sse(n: int, body: bytes) -> bytes:
    """One SSE event as the provider writes it."""
    return b"id: %d\nevent: tick\ndata: %b\n\n" % (n, body)


def frame_line(n: int, body: bytes) -> bytes:
    """One line-delimited event (``n`` unused: lines carry no id outside the JSON)."""
    return body + b"\n"


class HttpSink:
    """SSE and lines: a chunked HTTP response body."""

    def __init__(self, request: web.BaseRequest, resp: web.StreamResponse, sse: bool) -> None:
        self._request = request
        self._resp = resp
        self._frame = frame_sse if sse else frame_line
        self._malformed = b"data: " + MALFORMED + b"\n\n" if sse else MALFORMED + b"\n"
        self._keepalive = b": keep-alive\n\n" if sse else b"\r\n"
        self._sse = sse

    async def send_events(self, batch: Sequence[tuple[int, bytes]]) -> None:
        frame = self._frame
        await self._resp.write(b"".join([frame(n, body) for n, body in batch]))

    async def send_malformed(self) -> None:
        await self._resp.write(self._malformed)

    async def send_oversize(self, body: bytes) -> None:
        await self._resp.write(b"data: " + body + b"\n\n" if self._sse else body + b"\n")

    async def send_keepalive(self) -> None:
        await self._resp.write(self._keepalive)

    async def cut(self, n: int, body: bytes) -> None:
        framed = self._frame(n, body)
        await self._resp.write(framed[: len(framed) // 2])
        _drop(self._request)

    async def close(self, abrupt: bool, *, going_away: bool = False) -> None:
        if not abrupt:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._resp.write_eof()
                return
            except TimeoutError:
                pass
        _drop(self._request)

    def stall(self) -> None:
        """Nothing to do: an HTTP stream never reads from the client after the request."""


def ws_frame_header(opcode: int, length: int, *, rsv1: bool = False) -> bytes:
    """An unmasked, final server frame header for a payload of ``length`` bytes (``rsv1``: the
    payload is permessage-deflated)."""
    first = 0xC0 | opcode if rsv1 else 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def _compressor(request: web.BaseRequest, ws: web.WebSocketResponse) -> tuple[Any, int]:
    """The data frames' compressor (None without permessage-deflate) and its flush mode: a
    full flush per message when the client asked for ``server_no_context_takeover``."""
    if not ws.compress:
        return None, zlib.Z_SYNC_FLUSH
    try:
        _, notakeover = ws_ext_parse(request.headers.get("Sec-WebSocket-Extensions"), isserver=True)
    except WSHandshakeError:
        notakeover = False
    level, wbits = zlib.Z_BEST_SPEED, -int(ws.compress)  # as aiohttp's writer
    flush = zlib.Z_FULL_FLUSH if notakeover else zlib.Z_SYNC_FLUSH
    return zlib.compressobj(level, zlib.DEFLATED, wbits), flush


class WsSink:
    """WebSocket: one message per event; a concurrent reader task handles the peer's frames.

    Data frames are framed (and, when permessage-deflate was negotiated, compressed) here and
    a whole batch goes out in one write, as ``HttpSink`` writes a batch of lines: aiohttp's
    ``send_frame`` makes one socket write per message, ~7 µs each, which made the provider,
    not the client, the limit of every ws benchmark. One compressor (context takeover, as
    aiohttp's) serves every data frame, so all of them go through ``_frames``; control frames
    (ping, close) are aiohttp's and never compressed.
    """

    def __init__(self, request: web.BaseRequest, ws: web.WebSocketResponse, binary: bool) -> None:
        self._request = request
        self._ws = ws
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self._deflate, self._flush = _compressor(request, ws)
        self.reader: asyncio.Task[None] | None = None
        self.closing = False  # we started the close: let it finish rather than cancel it

    def _frames(self, bodies: Sequence[bytes], opcode: int) -> bytes:
        deflate, flush = self._deflate, self._flush
        if deflate is None:
            return b"".join([ws_frame_header(opcode, len(b)) + b for b in bodies])
        out = []
        for body in bodies:
            data = (deflate.compress(body) + deflate.flush(flush))[:-4]  # RFC 7692 7.2.1
            out.append(ws_frame_header(opcode, len(data), rsv1=True) + data)
        return b"".join(out)

    async def _write(self, bodies: Sequence[bytes], opcode: int) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        transport.write(self._frames(bodies, opcode))
        protocol = self._request.protocol
        if protocol.writing_paused:
            await protocol._drain_helper()  # as aiohttp's own writers wait for the socket

    async def send_events(self, batch: Sequence[tuple[int, bytes]]) -> None:
        await self._write([body for _, body in batch], self._opcode)

    async def send_malformed(self) -> None:
        await self._write([MALFORMED], WSMsgType.TEXT)

    async def send_oversize(self, body: bytes) -> None:
        await self._write([body], self._opcode)

    async def send_keepalive(self) -> None:
        await self._ws.ping()

    async def cut(self, n: int, body: bytes) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.write(ws_frame_header(int(self._opcode), len(body)))
            transport.write(body[: len(body) // 2])
        _drop(self._request)

    async def close(self, abrupt: bool, *, going_away: bool = False) -> None:
        self.closing = True
        if not abrupt:
            code = WSCloseCode.GOING_AWAY if going_away else WSCloseCode.OK
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self._ws.close(code=code)
                return
            except TimeoutError:
                pass
        _drop(self._request)

    def stall(self) -> None:
        if self.reader is not None:
            self.reader.cancel()  # no more receive(): pings from the client go unanswered
