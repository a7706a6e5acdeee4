"""The transport conformance suite: what every ``transport:`` kind must do.

The harness is a real loopback server speaking the kind's protocol, playing one ``Script`` per
connection it accepts (then holding further connections open and silent). Each test runs the
real capture engine (``Runner``) on a SQLite store with ``key: $.id`` and checks the store:

- connect and store: every message, once, in order;
- framing across chunk splits: messages cut into pieces of a few bytes arrive whole;
- reconnect after a cut: the server closes; the transport ends, the supervisor reconnects;
- ``max_message_size``: a larger message is quarantined (with its size), the rest stored;
- stall detection: a connection silent for ``stall_timeout`` is aborted and replaced.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson

from longline.config import Config, parse_config
from longline.engine.runner import Runner
from longline.stores import open_store

__all__ = ["Script", "TransportConformance", "TransportHarness", "message"]


def message(i: int, size: int = 0) -> bytes:
    """The JSON message with ``id`` ``i`` (padded to about ``size`` bytes when given)."""
    return orjson.dumps({"id": i, "pad": "x" * max(0, size - 20)})


@dataclass
class Script:
    """What the server sends on one connection: ``messages`` framed by the kind, written in
    pieces of ``chunk`` bytes (None: as one write per message), then ``end``: ``close`` the
    connection, or ``hold`` it open and silent."""

    messages: list[bytes]
    chunk: int | None = None
    end: Literal["close", "hold"] = "hold"


@dataclass
class TransportHarness(ABC):
    """A loopback server for one transport kind, playing ``scripts`` one per connection."""

    scripts: list[Script] = field(default_factory=list)
    connections: int = 0
    kind: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    splits_frames: ClassVar[bool] = True
    """False for message transports (ws) whose frames cannot be cut by the server."""

    @abstractmethod
    def url(self) -> str:
        """The stream ``url`` that reaches this server."""

    def next_script(self) -> Script:
        """The script of a new connection (counted); past the list, a silent open one."""
        self.connections += 1
        return self.scripts.pop(0) if self.scripts else Script([])

    @staticmethod
    def pieces(data: bytes, chunk: int | None) -> list[bytes]:
        if chunk is None:
            return [data]
        return [data[i : i + chunk] for i in range(0, len(data), chunk)]


class TransportConformance:
    """Subclass as ``TestMyTransport(TransportConformance)`` and define a ``harness`` fixture
    yielding a started ``TransportHarness``."""

    def config(self, harness: TransportHarness, db: Path, **fields: Any) -> Config:
        """One stream of the harness's kind on a SQLite store, fast backoff; ``fields`` override."""
        stream = {
            "name": "conformance",
            "transport": harness.kind,
            "url": harness.url(),
            "options": dict(harness.options),
            "key": "$.id",
            "cursor": None,
            "resume": None,
            "backoff": {"initial": "20ms", "max": "100ms"},
            "stall_timeout": "5s",
            **fields,
        }
        return parse_config(
            {
                "store": f"sqlite:///{db}",
                "streams": [stream],
                "writer": {"batch_max": 100, "batch_window": "5ms"},
            },
            env={},
        )

    async def capture(self, cfg: Config, ids: int, quarantined: int = 0) -> Runner:
        """Run until ``ids`` events and ``quarantined`` items are stored (or fail after 30 s)."""
        runner = Runner(cfg, status_interval=0.2)
        task = asyncio.create_task(runner.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        try:
            while True:
                stats = runner.stats.get("conformance")
                if stats and stats.events >= ids and stats.quarantined >= quarantined:
                    break
                if task.done() or loop.time() > deadline:
                    raise AssertionError(f"capture did not get there: {runner.stats}")
                await asyncio.sleep(0.02)
        finally:
            runner.stop()
            await task
        return runner

    async def stored(self, cfg: Config) -> tuple[list[int], list[str]]:
        """Ids of the stored events in seq order, and the quarantine reasons."""
        store = open_store(cfg.store)
        await store.open()
        try:
            events = await store.read("conformance", 0, 100_000)
            bad = await store.read_quarantine("conformance")
        finally:
            await store.close()
        return [orjson.loads(e.payload)["id"] for e in events], [q.reason for q in bad]

    async def test_connects_and_stores_every_message_in_order(
        self, harness: TransportHarness, tmp_path: Path
    ) -> None:
        """One connection: every message stored once, in order, nothing quarantined."""
        harness.scripts = [Script([message(i) for i in range(1, 51)])]
        cfg = self.config(harness, tmp_path / "t.db")
        await self.capture(cfg, 50)
        assert await self.stored(cfg) == (list(range(1, 51)), [])
        assert harness.connections == 1

    async def test_framing_across_chunk_splits(
        self, harness: TransportHarness, tmp_path: Path
    ) -> None:
        """Messages split across reads (every 3 bytes, when the kind splits frames) frame intact."""
        chunk = 3 if harness.splits_frames else None
        harness.scripts = [Script([message(i, size=40 + i) for i in range(1, 31)], chunk=chunk)]
        cfg = self.config(harness, tmp_path / "t.db")
        await self.capture(cfg, 30)
        assert await self.stored(cfg) == (list(range(1, 31)), [])

    async def test_reconnects_after_a_cut(self, harness: TransportHarness, tmp_path: Path) -> None:
        """A closed connection is reconnected; the overlap the server resends is dropped as
        duplicates."""
        harness.scripts = [
            Script([message(i) for i in range(1, 11)], end="close"),
            Script([message(i) for i in range(8, 21)]),  # an overlap: dropped as duplicates
        ]
        cfg = self.config(harness, tmp_path / "t.db")
        runner = await self.capture(cfg, 20)
        assert await self.stored(cfg) == (list(range(1, 21)), [])
        assert harness.connections == 2
        stats = runner.stats["conformance"]
        assert (stats.reconnects, stats.duplicates) == (1, 3)

    async def test_oversized_message_is_quarantined(
        self, harness: TransportHarness, tmp_path: Path
    ) -> None:
        """A message over ``max_message_size`` is quarantined with the limit in its reason; the rest
        stored."""
        harness.scripts = [
            Script([message(1), message(2, size=5000), message(3)], end="close"),
            Script([message(3), message(4)]),
        ]
        cfg = self.config(harness, tmp_path / "t.db", max_message_size=1000)
        await self.capture(cfg, 3, quarantined=1)
        ids, reasons = await self.stored(cfg)
        assert ids == [1, 3, 4]
        assert len(reasons) == 1 and "1000" in reasons[0], reasons

    async def test_stalled_connection_is_replaced(
        self, harness: TransportHarness, tmp_path: Path
    ) -> None:
        """A connection silent past ``stall_timeout`` is replaced and capture goes on."""
        harness.scripts = [Script([message(1), message(2)]), Script([message(3)])]
        cfg = self.config(harness, tmp_path / "t.db", stall_timeout="500ms")
        runner = await self.capture(cfg, 3)
        assert await self.stored(cfg) == ([1, 2, 3], [])
        assert harness.connections == 2
        assert runner.stats["conformance"].reconnects == 1
