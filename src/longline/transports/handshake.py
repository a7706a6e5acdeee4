"""HTTP/1.1 by hand over a plain asyncio ``Protocol``: the request head, the response's status
line and headers, and a refusal's body head.

The direct connections (``ws_direct``, ``http_direct``) keep none of aiohttp's client objects
for their whole life (docs/benchmarks.md, issue 14); this is the handshake they share:
``exchange`` connects, sends the request and reads the answer's head (the protocol buffers
bytes until the head is complete, ``read_head`` parses it), ``body_for`` makes
the body's decoder (``core.httpbody``), ``body_head`` reads what a refusal says for the log
line.
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
from collections.abc import Callable, Mapping
from functools import cache
from ssl import SSLContext
from typing import TypeVar
from urllib.parse import SplitResult

from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from longline.core.errors import Cause, Outcome
from longline.core.httpbody import Body, BodyError
from longline.transports.base import ConnectionEnded
from longline.transports.http import body_read, printable

HEAD_LIMIT = 64 * 1024  # bytes of status line and headers a handshake response may take
BODY_WAIT = 1.0  # seconds: a refusal's body that trickles must not hold up the reconnect


@cache
def default_context() -> SSLContext:
    """The system's verification, one context for every connection (as aiohttp's ``True``)."""
    return ssl_module.create_default_context()


class HeadProtocol(asyncio.Protocol):
    """The socket's side until the head is read: bytes into ``buf``, a waiter woken."""

    __slots__ = ("_waiter", "buf", "eof", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()  # the response until its head is read
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Return when more bytes came or the peer closed."""
        if self.eof:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


class CallbackReading:
    """What the direct connections that parse in the protocol's callback share (``ws_direct``,
    ``http_direct``): their pump waits on ``_wake``, and ``_pause`` stops reading the socket
    while the sink is backlogged (the pump resumes it once the sink has drained)."""

    __slots__ = ()
    _proto: HeadProtocol | None
    _backlogged: bool
    _wake: asyncio.Future[None] | None

    def _pause(self) -> None:
        proto = self._proto
        self._backlogged = True  # type: ignore[misc]  # a slot of the concrete class
        if proto is not None and proto.transport is not None and not proto.eof:
            proto.transport.pause_reading()
        self._wake_pump()

    def _wake_pump(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)


P = TypeVar("P", bound=HeadProtocol)


async def exchange(
    factory: Callable[[], P],
    url: SplitResult,
    ssl: SSLContext | bool,
    timeout: float,
    request: Callable[[str, int, bool], bytes],
    made: Callable[[P], None],
) -> tuple[P, int, str, CIMultiDict[str], bytes]:
    """Connect to ``url``'s host (TLS for https and wss, with ``ssl`` or the system's
    context), send ``request(host, port, secure)`` and read the answer's head, all within
    ``timeout``; ``made`` gets the protocol as soon as it exists (to abort it meanwhile).

    Returns the protocol, status, reason, headers and the bytes after the head. A failure is a
    ``ConnectionEnded`` worded as aiohttp words it, naming ``host:port`` once: asyncio's own
    text repeats the address as ``('host', port)``, which the redaction of a host given as a
    secret (``host:port``) would not catch.
    """
    secure = url.scheme in ("https", "wss")
    host = url.hostname or ""
    port = url.port or (443 if secure else 80)
    context: SSLContext | None = None
    if secure:
        context = ssl if isinstance(ssl, SSLContext) else default_context()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, proto = await loop.create_connection(
                factory, host, port, ssl=context, server_hostname=host if secure else None
            )
            made(proto)
            assert proto.transport is not None
            proto.transport.write(request(host, port, secure))
            status, reason, head, rest = await read_head(proto)
    except TimeoutError:
        raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, "connect timed out")) from None
    except OSError as e:
        shown = "default" if ssl is True else "custom"
        detail = f"Cannot connect to host {host}:{port} ssl:{shown} [{_why(e)}]"
        outcome = Outcome(Cause.NETWORK, None, None, f"ClientConnectorError: {detail}")
        raise ConnectionEnded(outcome) from None
    return proto, status, reason, head, rest


def _why(e: OSError) -> str:
    """What went wrong, without the socket address asyncio puts in a refused connect's text."""
    if e.errno and not isinstance(e, ssl_module.SSLError):
        return os.strerror(e.errno)
    return e.strerror or str(e) or type(e).__name__


def base_headers(host: str, port: int, secure: bool) -> CIMultiDict[str]:
    """``Host`` and ``User-Agent`` as aiohttp sends them (the stream's own may replace them)."""
    default_port = port == (443 if secure else 80)
    shown = f"[{host}]" if ":" in host else host
    return CIMultiDict[str](
        {
            "Host": shown if default_port else f"{shown}:{port}",
            "User-Agent": SERVER_SOFTWARE,
        }
    )


def get_request(path: str, query: str, headers: Mapping[str, str]) -> bytes:
    """A GET request's head."""
    target = (path or "/") + (f"?{query}" if query else "")
    lines = [f"GET {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_head(proto: HeadProtocol) -> tuple[int, str, CIMultiDict[str], bytes]:
    """Status, reason phrase, headers and the bytes after them, once the headers are complete."""
    while True:
        end = proto.buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(proto.buf) > HEAD_LIMIT:
            detail = "handshake response too large"
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, detail))
        if proto.eof:
            raise ConnectionEnded(
                Outcome(Cause.NETWORK, None, None, "connection closed during the handshake")
            )
        await proto.more()
    head = bytes(proto.buf[:end]).decode("latin-1")
    rest = bytes(proto.buf[end + 4 :])
    status_line, *header_lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        detail = f"not an HTTP response: {status_line[:60]!r}"
        raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, detail))
    headers = CIMultiDict[str]()
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers.add(name.strip(), value.strip())
    reason = parts[2].strip() if len(parts) > 2 else ""
    return int(parts[1]), reason, headers, rest


def body_for(headers: Mapping[str, str]) -> Body:
    """The decoder of the body these response headers announce (raises ``BodyError``)."""
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    length = headers.get("Content-Length")
    size: int | None = None
    if length is not None and not chunked:
        if not length.strip().isdigit():
            raise BodyError(f"invalid Content-Length {length[:20]!r}")
        size = int(length)
    return Body(chunked=chunked, length=size, encoding=headers.get("Content-Encoding", ""))


async def body_head(proto: HeadProtocol, headers: CIMultiDict[str], rest: bytes) -> str:
    """The first bytes of a refusal's body as ``http.body_head`` gives them: de-chunked and
    decompressed, ``http.body_read()`` bytes at most, whatever came within ``BODY_WAIT``."""
    want = body_read()
    got = bytearray()
    try:
        body = body_for(headers)
    except BodyError:
        return ""
    start = len(proto.buf) - len(rest)
    try:
        async with asyncio.timeout(BODY_WAIT):
            while True:
                new = bytes(proto.buf[start:])
                start += len(new)
                out = body.feed(new)
                while out and len(got) < want:
                    got += out
                    out = body.more()
                if body.done or len(got) >= want or proto.eof:
                    break
                await proto.more()
    except (TimeoutError, BodyError):
        pass
    return printable(bytes(got[:want]))
