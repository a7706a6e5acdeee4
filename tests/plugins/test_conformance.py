"""The conformance suites on the example plugin's kinds, as a plugin author would run them:
``tcp-lines`` against a loopback TCP server, ``jsonl-file`` against its file, and the store
contract on ``example-sqlite``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from longline.testing.conformance import sinks
from longline.testing.conformance.processors import (
    Delivered,
    ProcessorConformance,
    ProcessorHarness,
)
from longline.testing.conformance.stores import StoreConformance
from longline.testing.conformance.transports import TransportConformance, TransportHarness

pytestmark = pytest.mark.usefixtures("example_plugin")


@dataclass
class TcpLinesHarness(TransportHarness):
    kind = "tcp-lines"
    options = {"read_size": 5}  # noqa: RUF012 - a ClassVar of the base
    port: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.next_script()
        with contextlib.suppress(ConnectionError):
            data = b"".join(m + b"\n" for m in script.messages)
            for piece in self.pieces(data, script.chunk):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.001)
            if script.end == "hold":
                await self.done.wait()
        writer.close()


class TestTcpLines(TransportConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[TcpLinesHarness]:
        h = TcpLinesHarness()
        server = await asyncio.start_server(h.handle, "127.0.0.1", 0)
        h.port = server.sockets[0].getsockname()[1]
        try:
            yield h
        finally:
            h.done.set()
            server.close()
            await server.wait_closed()


class JsonlFileHarness(ProcessorHarness):
    """The plugin's own fault switch (``fail_if_exists``) makes the sink refuse."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.switch = Path(f"{path}.down")

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "jsonl-file",
            "path": str(self.path),
            "fail_if_exists": str(self.switch),
        }

    async def delivered(self) -> list[Delivered]:
        return sinks.read(self.path)

    async def down(self) -> None:
        self.switch.touch()

    async def up(self) -> None:
        self.switch.unlink(missing_ok=True)


class TestJsonlFile(ProcessorConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> JsonlFileHarness:
        return JsonlFileHarness(tmp_path / "out.jsonl")


class TestExampleSqliteStore(StoreConformance):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"example-sqlite:///{tmp_path / 'contract.db'}"
