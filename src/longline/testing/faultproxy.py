"""A fault-injecting TCP proxy: put it between a client and a server and break the link on demand.

Real networks cut a connection in the middle of an event, reset it without a close, leave it
half-open and silent, crawl, or refuse it; a provider's load balancer answers 429/503 or closes a
WebSocket with 1001/1011. ``FaultProxy`` does each of those to a live connection (or to the next
ones), so a client's recovery can be tested against the real thing, with its own reconnects.

    async with FaultProxy("127.0.0.1", provider.port) as proxy:
        url = proxy.url(provider.url("sse", "feed"))   # the same URL, through the proxy
        ...
        conn = proxy.active[0]
        await proxy.cut(conn)             # forward part of the next chunk, then FIN
        proxy.reset(conn)                 # RST: SO_LINGER 0, no close handshake
        proxy.blackhole(conn)             # half-open: both directions silently stop
        proxy.trickle(conn, 2.0)          # one byte per write for two seconds
        await proxy.ws_close(conn, 1011)  # a WebSocket close frame at the next frame boundary
        proxy.respond_next(429, retry_after="1")  # the next connection gets an HTTP answer
        await proxy.refuse_for(1.0)       # stop listening: connections are refused

Every connection leaves a ``ConnectionRecord`` in ``history`` (when it opened, delivered its
first byte, was impaired by a fault and closed), which is what an auditor needs to decide which
events a client could have received.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ConnectionRecord", "FaultProxy", "ProxyConnection"]

_READ = 64 * 1024
_REASONS = {429: "Too Many Requests", 503: "Service Unavailable", 502: "Bad Gateway"}


@dataclass(slots=True)
class ConnectionRecord:
    """What happened to one proxied connection; times are ``loop.time()`` values."""

    opened: float
    first_byte: float | None = None  # first byte from the server reached the client
    impaired: float | None = None  # a fault was injected (the link stopped being healthy)
    closed: float | None = None
    fault: str | None = None  # the first fault injected (a trickle does not impair)
    bytes_down: int = 0
    bytes_up: int = 0

    def healthy_until(self) -> float | None:
        """When the link stopped carrying data normally (None: still healthy and open)."""
        ends = [t for t in (self.impaired, self.closed) if t is not None]
        return min(ends) if ends else None


@dataclass(eq=False)
class ProxyConnection:
    """One client connection and its upstream: the handle that faults are applied to."""

    record: ConnectionRecord
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    blackholed: bool = False
    trickle_until: float = 0.0
    cut_pending: asyncio.Future[None] | None = None
    ws_close_pending: tuple[int, asyncio.Future[None]] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _ws: _WsFrames | None = None


class _WsFrames:
    """Tracks server-to-client WebSocket frame boundaries after the 101 answer."""

    def __init__(self) -> None:
        self.head_done = False
        self.buf = b""  # the bytes of an unfinished frame header (or HTTP head)
        self.remaining = 0  # payload bytes of the current frame still to pass

    def boundaries(self, data: bytes) -> list[int]:
        """Offsets in ``data`` (after this call's bytes are consumed) where a frame starts."""
        out: list[int] = []
        pos = 0
        if not self.head_done:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            self.head_done = True
            pos = len(data) - (len(self.buf) - (end + 4))
            self.buf = b""
        while pos < len(data):
            if self.remaining:
                step = min(self.remaining, len(data) - pos)
                self.remaining -= step
                pos += step
                continue
            if not self.buf:
                out.append(pos)
            take = data[pos : pos + 14 - len(self.buf)]
            self.buf += take
            need = self._header_len()
            if need is None or len(self.buf) < need:
                pos += len(take)
                continue
            used = need - (len(self.buf) - len(take))
            pos += used
            self.remaining = self._payload_len()
            self.buf = b""
        if not self.buf and not self.remaining:
            out.append(len(data))
        return out

    def _header_len(self) -> int | None:
        if len(self.buf) < 2:
            return None
        size = self.buf[1] & 0x7F
        extra = 2 if size == 126 else 8 if size == 127 else 0
        return 2 + extra + (4 if self.buf[1] & 0x80 else 0)

    def _payload_len(self) -> int:
        size = self.buf[1] & 0x7F
        if size == 126:
            return int(struct.unpack(">H", self.buf[2:4])[0])
        if size == 127:
            return int(struct.unpack(">Q", self.buf[2:10])[0])
        return size


def _is_ws_upgrade(data: bytes) -> bool:
    return data.startswith(b"GET ") and b"upgrade: websocket" in data.lower()


def _close_frame(code: int) -> bytes:
    body = struct.pack(">H", code)
    return bytes([0x88, len(body)]) + body


class FaultProxy:
    """Forwards TCP connections from ``host:port`` to ``upstream_host:upstream_port``."""

    def __init__(
        self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._up = (upstream_host, upstream_port)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._responses: list[tuple[int, str | None]] = []
        self.active: list[ProxyConnection] = []
        self.history: list[ConnectionRecord] = []
        self.refused = 0  # connections answered with a status instead of being proxied

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The listening port (fixed after the first ``start``, kept across ``refuse_for``)."""
        if not self._port:
            raise RuntimeError("the proxy is not started")
        return self._port

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = (auth + "@" if auth else "") + f"{self._host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        """Listen (on the same port again after ``refuse_for``)."""
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, reuse_address=True
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        await self._stop_listening()
        for conn in list(self.active):
            self._teardown(conn)
        for conn in list(self.active):
            await conn.done.wait()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    # -- faults ------------------------------------------------------------------------------

    async def refuse_for(self, seconds: float) -> None:
        """Stop listening for ``seconds``: new connections get ECONNREFUSED meanwhile."""
        if self._server is None:
            return
        self._server.close()  # wait_closed would wait for the open connections too
        self._server = None
        await asyncio.sleep(seconds)
        await self.start()

    def respond_next(self, status: int, retry_after: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` connections with an HTTP ``status`` (and ``Retry-After``)."""
        self._responses.extend([(status, retry_after)] * count)

    async def cut(self, conn: ProxyConnection, timeout: float = 5.0) -> None:
        """Forward about half of the next chunk the server sends, then close (FIN) both sides.

        A chunk holds events or frames, so the client sees one cut in the middle of one."""
        fut = asyncio.get_running_loop().create_future()
        conn.cut_pending = fut
        self._impair(conn, "cut")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        if not fut.done():  # nothing came: cut anyway
            self._teardown(conn)

    def reset(self, conn: ProxyConnection) -> None:
        """Close both sides with SO_LINGER 0: a TCP reset, no close handshake, data discarded."""
        self._impair(conn, "reset")
        for writer in (conn.client, conn.upstream):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
            writer.transport.abort()
        self._teardown(conn)

    def blackhole(self, conn: ProxyConnection) -> None:
        """Half-open: forward nothing either way while both sockets stay open, until the client
        (or ``stop``) closes it."""
        self._impair(conn, "blackhole")
        conn.blackholed = True

    def trickle(self, conn: ProxyConnection, seconds: float) -> None:
        """Deliver server bytes one at a time (1 ms apart) for ``seconds``, then normally.

        Slow is not broken: the connection's record is not marked impaired."""
        conn.record.fault = conn.record.fault or "trickle"
        conn.trickle_until = asyncio.get_running_loop().time() + seconds

    async def ws_close(self, conn: ProxyConnection, code: int, timeout: float = 5.0) -> None:
        """Send the client a WebSocket close frame with ``code`` at the next frame boundary (as
        the server would), then drop the connection."""
        fut = asyncio.get_running_loop().create_future()
        conn.ws_close_pending = (code, fut)
        self._impair(conn, f"ws-{code}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        self._teardown(conn)

    def _impair(self, conn: ProxyConnection, fault: str) -> None:
        rec = conn.record
        if rec.impaired is None:
            rec.impaired = asyncio.get_running_loop().time()
            rec.fault = fault

    # -- plumbing ----------------------------------------------------------------------------

    def usable(self) -> list[ProxyConnection]:
        """Connections that delivered and are carrying data normally right now."""
        now = asyncio.get_running_loop().time()
        return [
            c
            for c in self.active
            if c.record.first_byte is not None
            and c.record.impaired is None
            and c.trickle_until <= now
        ]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        if self._responses:
            status, retry_after = self._responses.pop(0)
            self.refused += 1
            await self._answer(reader, writer, status, retry_after)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._up)
        except OSError:
            writer.transport.abort()
            return
        rec = ConnectionRecord(opened=loop.time())
        self.history.append(rec)
        conn = ProxyConnection(rec, writer, up_writer)
        self.active.append(conn)
        conn.tasks = [
            asyncio.create_task(self._pump_up(conn, reader)),
            asyncio.create_task(self._pump_down(conn, up_reader)),
        ]
        try:
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._teardown(conn)
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            rec.closed = rec.closed or loop.time()
            if conn in self.active:
                self.active.remove(conn)
            conn.done.set()

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        retry_after: str | None,
    ) -> None:
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            async with asyncio.timeout(5):
                await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            if retry_after is not None:
                head += f"Retry-After: {retry_after}\r\n"
            head += "Content-Length: 8\r\nConnection: close\r\n\r\nrefused\n"
            writer.write(head.encode())
            await writer.drain()
        writer.close()

    async def _pump_up(self, conn: ProxyConnection, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_READ):
                if conn.blackholed:
                    continue  # swallowed; reading on still notices the client leaving
                if conn._ws is None and _is_ws_upgrade(data):
                    conn._ws = _WsFrames()
                conn.record.bytes_up += len(data)
                conn.upstream.write(data)
                await conn.upstream.drain()

    async def _pump_down(self, conn: ProxyConnection, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while data := await reader.read(_READ):
                if conn.blackholed:
                    continue
                if conn.cut_pending is not None:
                    await self._write(conn, data[: max(1, len(data) // 2)])
                    conn.cut_pending.set_result(None)
                    return
                if conn.ws_close_pending is not None and conn._ws is not None:
                    code, fut = conn.ws_close_pending
                    at = conn._ws.boundaries(data)
                    if at:
                        await self._write(conn, data[: at[0]] + _close_frame(code))
                        fut.set_result(None)
                        await asyncio.sleep(1.0)  # let the client answer, then drop
                        return
                elif conn._ws is not None:
                    conn._ws.boundaries(data)
                if conn.record.first_byte is None:
                    conn.record.first_byte = loop.time()
                pos = 0
                while pos < len(data) and loop.time() < conn.trickle_until:
                    await self._write(conn, data[pos : pos + 1])
                    await asyncio.sleep(0.001)
                    pos += 1
                if pos < len(data):
                    await self._write(conn, data[pos:])

    @staticmethod
    async def _write(conn: ProxyConnection, data: bytes) -> None:
        conn.record.bytes_down += len(data)
        conn.client.write(data)
        await conn.client.drain()

    def _teardown(self, conn: ProxyConnection) -> None:
        loop = asyncio.get_running_loop()
        if conn.record.closed is None:
            conn.record.closed = loop.time()
        for writer in (conn.client, conn.upstream):
            with contextlib.suppress(Exception):
                writer.close()
        for task in conn.tasks:
            if task is not asyncio.current_task():
                task.cancel()
