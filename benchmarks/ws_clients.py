"""Which WebSocket client holds an idle connection in the fewest bytes (issue 14)?

``python -m benchmarks.ws_clients --streams 5000``: for each client, a fresh process opens that
many idle connections to the local provider (its own process, ``total=0`` feeds) and reports
RSS per connection after they are all open plus a few seconds. Every client offers
permessage-deflate where it can and pings every 10 s, as longline does:

- ``aiohttp``: ``session.ws_connect`` and one reader task each (what longline uses now);
- ``wsproto``: the sans-I/O ``wsproto.WSConnection`` under a plain ``asyncio.Protocol``, no
  task, a ping timer each (the handshake object kept, as wsproto keeps it);
- ``picows``: ``picows.ws_connect`` with a listener, its own auto-ping and a 1 KiB initial read
  buffer (its default of 16 KiB is allocated per connection and held while idle); picows has no
  permessage-deflate, so this is the floor of a Cython client before deflate is added;
- ``reader``: a plain ``asyncio.Protocol`` doing the upgrade by hand, then feeding aiohttp's
  own C frame parser (``aiohttp._websocket.reader.WebSocketReader``, deflate on, with its
  ``WebSocketDataQueue``): what a trimmed aiohttp path could get down to;
- ``protocol``: a bare ``asyncio.Protocol`` that sends the upgrade request and ignores what
  comes back: the floor of any asyncio client (transport, socket, protocol object).

``--parse-cost`` instead measures the CPU each parser spends per 200 B message arriving
permessage-deflated (20,000 messages fed in 64 KiB reads): wsproto's pure-Python framing
against aiohttp's compiled ``WebSocketReader`` (which ``ws_direct`` uses).

``wsproto`` and ``picows`` are not longline dependencies (``pip install wsproto picows``); a
client that is missing is reported as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp

from benchmarks.idle import SETTLE, rss_kb
from benchmarks.provider import ProviderProcess
from benchmarks.serve import raise_fd_limit

CLIENTS = ("protocol", "reader", "picows", "wsproto", "aiohttp")
PING = 10.0


async def _aiohttp(port: int, n: int) -> list[Any]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    opened: list[asyncio.Future[None]] = []

    async def hold(i: int, fut: asyncio.Future[None]) -> None:
        url = f"ws://127.0.0.1:{port}/ws/a{i}?total=0"
        async with session.ws_connect(url, compress=15, heartbeat=PING) as ws:
            fut.set_result(None)
            async for _ in ws:
                pass

    loop = asyncio.get_running_loop()
    tasks = []
    for i in range(n):
        fut = loop.create_future()
        opened.append(fut)
        tasks.append(loop.create_task(hold(i, fut)))
    await asyncio.gather(*opened)
    return [session, tasks]


class _WsprotoClient(asyncio.Protocol):
    """wsproto under a Protocol: answers pings, pings every ``PING`` s, drops messages."""

    def __init__(self, host: str, path: str, opened: asyncio.Future[None]) -> None:
        from wsproto import ConnectionType, WSConnection

        self.ws = WSConnection(ConnectionType.CLIENT)
        self.host, self.path, self.opened = host, path, opened
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        from wsproto.events import Request
        from wsproto.extensions import PerMessageDeflate

        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = Request(host=self.host, target=self.path, extensions=[PerMessageDeflate()])
        transport.write(self.ws.send(request))

    def data_received(self, data: bytes) -> None:
        from wsproto.events import AcceptConnection, Ping

        assert self.transport is not None
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.opened.set_result(None)
                self.timer = asyncio.get_running_loop().call_later(PING, self.ping)
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))

    def ping(self) -> None:
        from wsproto.events import Ping

        assert self.transport is not None
        self.transport.write(self.ws.send(Ping(b"1")))
        self.timer = asyncio.get_running_loop().call_later(PING, self.ping)


async def _wsproto(port: int, n: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    held: list[Any] = []
    for i in range(n):
        fut = loop.create_future()
        held.append(
            await loop.create_connection(
                lambda i=i, fut=fut: _WsprotoClient("127.0.0.1", f"/ws/w{i}?total=0", fut),
                "127.0.0.1",
                port,
            )
        )
        await fut
    return held


async def _picows(port: int, n: int) -> list[Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

    held = []
    for i in range(n):
        held.append(
            await ws_connect(
                Listener,
                f"ws://127.0.0.1:{port}/ws/p{i}?total=0",
                enable_auto_ping=True,
                auto_ping_idle_timeout=PING,
                auto_ping_reply_timeout=PING,
                read_buffer_init_size=1024,  # its default, 16 KiB, is held while idle
                use_aiofastnet=False,
            )
        )
    return held


class _Bare(asyncio.Protocol):
    """The upgrade request, then nothing: what asyncio alone costs per connection."""

    def __init__(self, path: str, opened: asyncio.Future[None]) -> None:
        self.path, self.opened = path, opened

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.opened.set_result(None)


class _Reader(_Bare):
    """The upgrade by hand (deflate offered), then aiohttp's frame parser on the same bytes."""

    _reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.reader: Any = None
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
        )
        self.timer = asyncio.get_running_loop().call_later(PING, self.ping)

    def data_received(self, data: bytes) -> None:
        from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

        if self.reader is None:
            head, _, rest = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(head[:40])
            queue = WebSocketDataQueue(self, 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
            self.reader = WebSocketReader(queue, 4 * 2**20, compress=True, decode_text=False)
            self.opened.set_result(None)
            data = rest
        if data:
            self.reader.feed_data(data)

    def ping(self) -> None:
        self.transport.write(b"\x89\x80\x00\x00\x00\x00")  # masked, empty ping
        self.timer = asyncio.get_running_loop().call_later(PING, self.ping)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()


async def _reader(port: int, n: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    held: list[Any] = []
    for i in range(n):
        fut = loop.create_future()
        held.append(
            await loop.create_connection(
                lambda i=i, fut=fut: _Reader(f"/ws/r{i}?total=0", fut), "127.0.0.1", port
            )
        )
        await fut
    return held


async def _protocol(port: int, n: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    held: list[Any] = []
    for i in range(n):
        fut = loop.create_future()
        held.append(
            await loop.create_connection(
                lambda i=i, fut=fut: _Bare(f"/ws/b{i}?total=0", fut), "127.0.0.1", port
            )
        )
        await fut
    return held


async def measure(client: str, port: int, n: int) -> dict[str, Any]:
    """Open ``n`` idle connections with ``client``; RSS per connection after ``SETTLE`` s."""
    opener = {
        "aiohttp": _aiohttp,
        "wsproto": _wsproto,
        "picows": _picows,
        "protocol": _protocol,
        "reader": _reader,
    }
    gc.collect()
    start_kb = rss_kb()
    start = time.perf_counter()
    held = await opener[client](port, n)
    connect_s = time.perf_counter() - start
    await asyncio.sleep(SETTLE)
    gc.collect()
    kb = (rss_kb() - start_kb) / n
    del held
    return {"client": client, "streams": n, "connect_s": connect_s, "kb_per_stream": kb}


def _deflated_frames(n: int) -> bytes:
    """``n`` server frames (unmasked, RSV1, context takeover) of 200 B JSON messages."""
    import struct
    import zlib

    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = []
    for i in range(n):
        body = (b'{"id":%d,"data":"' % i).ljust(198, b"x") + b'"}'
        data = (comp.compress(body) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
        size = len(data)
        head = bytes([0xC1, size]) if size < 126 else bytes([0xC1, 126]) + struct.pack("!H", size)
        out.append(head + data)
    return b"".join(out)


def parse_cost(n: int = 20_000) -> dict[str, float]:
    """CPU microseconds per message: wsproto's ``Connection`` and aiohttp's reader."""
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

    data = _deflated_frames(n)
    reads = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    out: dict[str, float] = {}

    class _Paused:
        _reading_paused = False

        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...

    async def aiohttp_reader() -> float:
        queue = WebSocketDataQueue(_Paused(), 2**30, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
        reader = WebSocketReader(queue, 2**20, compress=True, decode_text=False)
        got = 0
        start = time.process_time()
        for chunk in reads:
            reader.feed_data(chunk)
            while queue._buffer:
                queue._buffer.popleft()
                got += 1
        assert got == n, got
        return (time.process_time() - start) / n * 1e6

    out["aiohttp reader"] = asyncio.run(aiohttp_reader())
    with contextlib.suppress(ImportError):
        from wsproto import ConnectionType
        from wsproto.connection import Connection
        from wsproto.extensions import PerMessageDeflate

        ext = PerMessageDeflate()
        ext._enabled = True  # as after a handshake that negotiated it
        conn = Connection(ConnectionType.CLIENT, extensions=[ext])
        got = 0
        start = time.process_time()
        for chunk in reads:
            conn.receive_data(chunk)
            got += sum(1 for _ in conn.events())
        assert got >= n, got
        out["wsproto"] = (time.process_time() - start) / n * 1e6
    return out


def child(client: str, port: int, n: int) -> None:
    """One client in this (fresh) process; print its JSON line."""
    raise_fd_limit(n + 1000)
    # import before the first reading, so module code is not counted per connection
    with contextlib.suppress(ImportError):
        import picows  # noqa: F401
        import wsproto  # noqa: F401
    print(json.dumps(asyncio.run(measure(client, port, n))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--only", default=None, help="comma-separated clients")
    parser.add_argument("--parse-cost", action="store_true", help="CPU per message instead")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.streams)
        return
    if args.parse_cost:
        for name, us in parse_cost().items():
            print(f"{name:<16} {us:6.2f} µs CPU per 200 B deflated message")
        return
    clients = args.only.split(",") if args.only else CLIENTS
    rows = []
    for client in clients:
        with ProviderProcess() as provider:
            cmd = [sys.executable, "-m", "benchmarks.ws_clients", "--child", client]
            cmd += ["--port", str(provider.port), "--streams", str(args.streams)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(json.dumps({"client": client, "skipped": last[:200]}), flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'client':<10} {'streams':>8} {'connect s':>10} {'KB/stream':>10}")
    for r in rows:
        kb = r["kb_per_stream"]
        print(f"{r['client']:<10} {r['streams']:>8} {r['connect_s']:>10.1f} {kb:>10.1f}")


if __name__ == "__main__":
    main()
