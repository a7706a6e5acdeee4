"""The transport conformance suite (``longline.testing.conformance``) on the built-in kinds,
each against a real loopback server: aiohttp serving SSE, a lines body, or WebSocket frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from aiohttp import web

from longline.testing.conformance.transports import (
    Script,
    TransportConformance,
    TransportHarness,
)
from longline.transports.registry import REGISTRY


@dataclass
class AiohttpHarness(TransportHarness):
    """One aiohttp server; ``frame`` and ``content_type`` make it SSE or lines."""

    port: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    content_type: ClassVar[str] = "text/plain"

    def url(self) -> str:
        scheme = "ws" if self.kind == "ws" else "http"
        return f"{scheme}://127.0.0.1:{self.port}/feed"

    def frame(self, msg: bytes) -> bytes:
        return msg + b"\n"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        script = self.next_script()
        resp = web.StreamResponse(headers={"Content-Type": self.content_type})
        await resp.prepare(request)
        for piece in self.pieces(b"".join(self.frame(m) for m in script.messages), script.chunk):
            await resp.write(piece)
            await asyncio.sleep(0.001)  # one read per piece: the client sees the splits
        if script.end == "hold":
            await self.done.wait()
        return resp


class SSEHarness(AiohttpHarness):
    kind = "sse"
    content_type = "text/event-stream"

    def frame(self, msg: bytes) -> bytes:
        return b"data: " + msg + b"\n\n"


class LinesHarness(AiohttpHarness):
    kind = "lines"
    content_type = "application/x-ndjson"


class WSHarness(AiohttpHarness):
    kind = "ws"
    splits_frames = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        script = self.next_script()
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        for msg in script.messages:
            await ws.send_bytes(msg)
        if script.end == "hold":
            await self.done.wait()
        else:
            await ws.close()
        return ws


async def _serve(harness: AiohttpHarness) -> AsyncIterator[AiohttpHarness]:
    app = web.Application()
    app.router.add_get("/feed", harness.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    harness.port = int(runner.addresses[0][1])
    try:
        yield harness
    finally:
        harness.done.set()
        await runner.cleanup()


class TestSSE(TransportConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[AiohttpHarness]:
        async for h in _serve(SSEHarness()):
            yield h


class TestLines(TransportConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[AiohttpHarness]:
        async for h in _serve(LinesHarness()):
            yield h


class TestWS(TransportConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[AiohttpHarness]:
        async for h in _serve(WSHarness()):
            yield h


def test_every_builtin_transport_runs_the_suite() -> None:
    assert sorted(c.kind for c in (SSEHarness, LinesHarness, WSHarness)) == sorted(
        REGISTRY.builtin_names()
    )
    assert Script([]).end == "hold"
