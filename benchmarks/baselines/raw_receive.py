"""The receive ceiling: an aiohttp client that reads the feed and decodes every event's JSON.

It frames the body by hand from ``readany`` chunks (the fastest way aiohttp offers, see
docs/architecture.md) and keeps nothing, so it is what a Python process can receive at best.
"""

from __future__ import annotations

import time

import aiohttp
import orjson


async def receive(url: str, transport: str, n: int, *, compress: int = 0) -> float:
    """Receive ``n`` events from ``url``; return events/s (connect included)."""
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        if transport == "ws":
            got = await _ws(session, url, n, compress)
        else:
            got = await _body(session, url, n, b"\n\n" if transport == "sse" else b"\n")
        elapsed = time.perf_counter() - start
    if got < n:
        raise RuntimeError(f"raw_receive got {got} of {n} events")
    return n / elapsed


async def _ws(session: aiohttp.ClientSession, url: str, n: int, compress: int) -> int:
    loads, got = orjson.loads, 0
    async with session.ws_connect(url, compress=compress) as ws:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                loads(msg.data)
                got += 1
                if got >= n:
                    break
    return got


async def _body(session: aiohttp.ClientSession, url: str, n: int, sep: bytes) -> int:
    loads, got, rest = orjson.loads, 0, b""
    sse = sep == b"\n\n"
    async with session.get(url) as resp:
        while got < n:
            chunk = await resp.content.readany()
            if not chunk:
                break
            parts = (rest + chunk).split(sep)
            rest = parts.pop()
            for part in parts:
                if sse:
                    start = part.find(b"data: ")
                    if start < 0:
                        continue  # a comment (keep-alive)
                    part = part[start + 6 :]
                elif not part.strip():
                    continue  # a keep-alive line
                loads(part)
                got += 1
    return got
