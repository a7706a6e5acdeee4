"""Many idle streams in one process: memory per stream and time to connect them all.

Run as its own process (``python -m benchmarks.idle --port P --streams N``) so that its RSS
holds nothing but this test; it prints one JSON object. The provider feeds are ``total=0``:
after the handshake they send nothing, and the client's own pings keep ws streams alive; sse
and lines feeds (``--transport``) send a keep-alive every ``KEEPALIVE`` seconds, as real
providers do. ``--port`` may name several providers (``P1,P2``): streams are dealt to them in
turn, so that no one provider process runs out of files. ``--hold S`` stays connected S seconds
before the reading and reports how many streams never reconnected. ``--raw``
measures the floor instead: bare aiohttp connections (same compression offer), each with one
task reading it, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.sslproto
import collections
import contextlib
import gc
import json
import ssl
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.serve import raise_fd_limit
from longline.config import parse_config
from longline.engine.runner import Runner
from longline.transports import tls as tls_module
from longline.transports.tls import TLS_READ_BUFFER

SETTLE = 3.0  # seconds to stay connected before the memory reading (status saves included)
KEEPALIVE = 10  # seconds between an idle sse/lines feed's keep-alives


def rss_kb() -> int:
    """Resident set size of this process in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def print_sites(before: tracemalloc.Snapshot, top: int) -> None:
    """Memory allocated since ``before`` per stream, by the innermost longline frame (stderr)."""
    after = tracemalloc.take_snapshot()
    sites: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        ours = [f for f in stat.traceback if "longline" in f.filename]
        frame = ours[-1] if ours else stat.traceback[-1]
        sites[f"{frame.filename.rsplit('/src/', 1)[-1]}:{frame.lineno}"] += stat.size_diff
    for site, size in sites.most_common(top):
        print(f"{size / 1024:10.1f} KiB  {site}", file=sys.stderr)


def _url(transport: str, ca: str | None, port: int, name: str) -> str:
    if transport == "ws":
        return f"{'ws' if ca is None else 'wss'}://127.0.0.1:{port}/ws/{name}?total=0"
    scheme = "http" if ca is None else "https"
    return f"{scheme}://127.0.0.1:{port}/{transport}/{name}?total=0&keepalive={KEEPALIVE}"


async def measure(
    ports: list[int],
    streams: int,
    timeout: float,
    trace: int = 0,
    ca: str | None = None,
    transport: str = "ws",
    hold: float = 0.0,
) -> dict[str, Any]:
    """Connect ``streams`` idle streams; return connect time and RSS figures. With
    ``trace``, also print that many top allocation sites (RSS then includes tracemalloc's).
    With ``ca``, over wss:// (https://) to a provider whose certificate that CA signed."""
    tls = {} if ca is None else {"tls": {"ca_file": ca}}
    gc.collect()
    rss_start = rss_kb()
    with tempfile.TemporaryDirectory() as tmp:
        data = {
            "store": f"sqlite:///{tmp}/idle.db",
            "streams": [
                {
                    "name": f"idle{i}",
                    "transport": transport,
                    "url": _url(transport, ca, ports[i % len(ports)], f"idle{i}"),
                    "key": "$.id",
                    **tls,
                }
                for i in range(streams)
            ],
        }
        config = parse_config(data, env={})
        gc.collect()
        rss_config = rss_kb()
        if trace:
            tracemalloc.start(40)
            before = tracemalloc.take_snapshot()
        runner = Runner(config)
        task = asyncio.create_task(runner.run())
        start = time.perf_counter()
        connected_at = None
        try:
            while time.perf_counter() - start < timeout:
                live = sum(1 for s in runner.stats.values() if s.state == "live")
                if live == streams:
                    connected_at = time.perf_counter() - start
                    break
                if task.done():
                    raise RuntimeError("the runner ended early")
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(SETTLE, hold))
            live = sum(1 for s in runner.stats.values() if s.state == "live")
            steady = sum(1 for s in runner.stats.values() if s.reconnects == 0)
            gc.collect()
            rss_connected = rss_kb()
            if trace:
                print_sites(before, trace)
        finally:
            runner.stop()
            await task
    return {
        "transport": transport,
        "streams": streams,
        "connected": live,
        "connect_s": connected_at,
        "held_s": max(SETTLE, hold),
        "never_reconnected": steady,
        "rss_start_kb": rss_start,
        "rss_config_kb": rss_config,
        "rss_connected_kb": rss_connected,
        "kb_per_stream": (rss_connected - rss_start) / streams,
        "config_kb_per_stream": (rss_config - rss_start) / streams,
    }


async def measure_raw(
    port: int, streams: int, timeout: float, ca: str | None = None
) -> dict[str, Any]:
    """The same with bare aiohttp WebSocket connections and one reader task each (over
    wss:// with one shared ``SSLContext`` trusting ``ca``, when given)."""
    scheme = "ws" if ca is None else "wss"
    context: ssl.SSLContext | bool = True if ca is None else ssl.create_default_context(cafile=ca)
    gc.collect()
    rss_start = rss_kb()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def hold(i: int, opened: asyncio.Event) -> None:
            url = f"{scheme}://127.0.0.1:{port}/ws/raw{i}?total=0"
            async with session.ws_connect(url, compress=15, heartbeat=10.0, ssl=context) as ws:
                opened.set()
                async for _ in ws:
                    pass

        events = [asyncio.Event() for _ in range(streams)]
        start = time.perf_counter()
        tasks = [asyncio.create_task(hold(i, events[i])) for i in range(streams)]
        connected_at = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(e.wait() for e in events))
                connected_at = time.perf_counter() - start
        del events
        await asyncio.sleep(SETTLE)
        live = sum(1 for t in tasks if not t.done())
        gc.collect()
        rss_connected = rss_kb()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams": streams,
        "connected": live,
        "connect_s": connected_at,
        "rss_start_kb": rss_start,
        "rss_config_kb": rss_start,
        "rss_connected_kb": rss_connected,
        "kb_per_stream": (rss_connected - rss_start) / streams,
        "config_kb_per_stream": 0.0,
    }


def main() -> None:
    """Parse the command line, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", required=True, help="provider port(s), comma-separated")
    parser.add_argument("--transport", choices=("ws", "sse", "lines"), default="ws")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to stay connected")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--raw", action="store_true", help="bare aiohttp connections")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="N", help="print N top allocation sites"
    )
    parser.add_argument("--ca", default=None, help="wss:// to a provider this CA (PEM) signed")
    parser.add_argument(
        "--tls-buffer",
        type=int,
        default=TLS_READ_BUFFER,
        metavar="BYTES",
        help="asyncio's TLS read buffer per connection (262144: the stdlib's own)",
    )
    args = parser.parse_args()
    raise_fd_limit(args.streams * 2 + 1000)
    tls_module.TLS_READ_BUFFER = args.tls_buffer  # what Runner applies (and raw, below)
    asyncio.sslproto.SSLProtocol.max_size = args.tls_buffer
    ports = [int(p) for p in args.port.split(",")]
    if args.raw:
        figures = asyncio.run(measure_raw(ports[0], args.streams, args.timeout, args.ca))
    else:
        figures = asyncio.run(
            measure(
                ports,
                args.streams,
                args.timeout,
                args.tracemalloc,
                args.ca,
                args.transport,
                args.hold,
            )
        )
    figures["tls_buffer"] = args.tls_buffer if args.ca else None
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
