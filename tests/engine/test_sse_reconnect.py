"""SSE as a browser runs it, against a real loopback server and a real SQLite file: feeds without
ids are stored whole, ``Last-Event-ID`` on each reconnect is exactly the last event ID (absent
when empty), and ``retry`` sets the least delay before each later reconnect.

The server plays one script per connection (then holds the last one open with comments) and
records, server side, the ``Last-Event-ID`` of each request and when each connection began and
ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from hashlib import blake2b
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from longline.config import Config
from longline.core.model import StoredEvent
from longline.stores import open_store
from tests.conftest import capture_until, make_config, quarantined


class ScriptedSSE:
    """Connection N gets ``scripts[N]`` and is closed; later ones get ``held``, then are held
    open (a comment every 50 ms) until the server stops."""

    def __init__(self, scripts: list[bytes], held: bytes = b"") -> None:
        self.scripts = scripts
        self.held = held
        self.last_event_ids: list[str | None] = []
        self.began: list[float] = []
        self.ended: list[float] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._closing = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        n = len(self.last_event_ids)
        self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        self.began.append(loop.time())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if n < len(self.scripts):
            await resp.write(self.scripts[n])
            self.ended.append(loop.time())
            return resp
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(self.held)
            while not self._closing:
                await resp.write(b": held\n\n")
                await asyncio.sleep(0.05)
        return resp

    async def __aenter__(self) -> ScriptedSSE:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


async def read_back(cfg: Config, name: str) -> tuple[list[StoredEvent], str | None]:
    store = open_store(cfg.store)
    await store.open()
    try:
        return await store.read(name, 0, 10_000), await store.checkpoint(name)
    finally:
        await store.close()


def sse_stream(url: str, **extra: Any) -> dict[str, Any]:
    """An SSE stream with every key/cursor default, fast test backoff."""
    return {"name": "s", "transport": "sse", "url": url, **extra}


def blocks(*lines: str) -> bytes:
    return "".join(lines).encode()


def h(data: str, event: str | None = None) -> str:
    prefix = b"" if event is None else event.encode() + b"\n"
    return blake2b(prefix + data.encode(), digest_size=16).hexdigest()


async def test_feed_without_ids_is_stored_whole_with_no_quarantine(tmp_db: Path) -> None:
    """No ``id:`` anywhere: every event stored, once, keyed by its type and data; a server that
    replays on reconnect (it gets no ``Last-Event-ID``) is deduplicated; no checkpoint."""
    first = "".join(f'data: {{"n": {i}}}\n\n' for i in range(1, 151))
    typed = 'event: tick\ndata: {"n": 150}\n\n'  # same data, other type: another event
    again = 'data: {"n": 7}\n\n'  # identical id-less event repeated: collapses (documented)
    second = "".join(f'data: {{"n": {i}}}\n\n' for i in range(101, 201))  # 101..150 replayed
    async with ScriptedSSE([blocks(first, typed, again), blocks(second)]) as server:
        cfg = make_config(tmp_db, sse_stream(server.url))
        runner = await capture_until(
            cfg, lambda r: r.stats["s"].events >= 201 and len(server.last_event_ids) >= 3
        )
    events, checkpoint = await read_back(cfg, "s")
    expected = [f'{{"n": {i}}}' for i in range(1, 151)]
    expected += ['{"n": 150}']
    expected += [f'{{"n": {i}}}' for i in range(151, 201)]
    assert [e.payload for e in events] == expected
    assert [e.event for e in events] == ["message"] * 150 + ["tick"] + ["message"] * 50
    assert [e.key for e in events] == [
        *(h(p) for p in expected[:150]),
        h('{"n": 150}', "tick"),
        *(h(p) for p in expected[151:]),
    ]
    assert all(e.cursor is None for e in events)
    assert checkpoint is None
    assert await quarantined(cfg, "s") == []
    assert runner.stats["s"].quarantined == 0
    assert runner.stats["s"].events == 201
    assert server.last_event_ids == [None, None, None]


async def test_redundant_connections_without_ids_collapse(tmp_db: Path) -> None:
    """Two connections deliver the same id-less events: each is stored once."""
    feed = blocks(*(f"data: e{i}\n\n" for i in range(1, 101)))
    async with ScriptedSSE([], held=feed) as server:
        cfg = make_config(tmp_db, sse_stream(server.url, redundancy=2))
        runner = await capture_until(
            cfg, lambda r: r.stats["s"].events + r.stats["s"].duplicates >= 200
        )
        assert server.last_event_ids == [None, None]
    events, _ = await read_back(cfg, "s")
    assert [e.payload for e in events] == [f"e{i}" for i in range(1, 101)]
    assert runner.stats["s"].duplicates == 100
    assert await quarantined(cfg, "s") == []


async def test_rotation_overlap_without_ids_collapses(tmp_db: Path) -> None:
    """Each make-before-break successor gets the same id-less events again: stored once."""
    feed = blocks(*(f"data: r{i}\n\n" for i in range(1, 51)))
    async with ScriptedSSE([], held=feed) as server:
        cfg = make_config(tmp_db, sse_stream(server.url, max_lifetime="300ms"))
        runner = await capture_until(cfg, lambda r: r.stats["s"].rotations >= 2)
    events, checkpoint = await read_back(cfg, "s")
    assert [e.payload for e in events] == [f"r{i}" for i in range(1, 51)]
    assert runner.stats["s"].duplicates >= 100
    assert checkpoint is None
    assert await quarantined(cfg, "s") == []


async def test_last_event_id_sent_on_each_reconnect_is_the_last_event_id(tmp_db: Path) -> None:
    scripts = [
        # 1: an id, then an event without one (it inherits "a")
        blocks("id: a\ndata: 1\n\n", "data: 2\n\n"),
        # 2: resumed from "a"; an id-only block moves the last event ID to "c" without an event
        blocks("data: 3\n\n", "id: b\ndata: 4\n\n", "id: c\n\n"),
        # 3: "id" with no value resets it: later events have no cursor
        blocks("id\ndata: 5\n\n", "data: 6\n\n"),
        # 4: no Last-Event-ID at all; the id of the event cut off by the close does not count
        blocks("id: d\ndata: 7\n\n", "id: e\ndata: 8\n"),
        # 5: resumed from "d", then held open
        blocks("data: 9\n\n"),
    ]
    async with ScriptedSSE(scripts) as server:
        cfg = make_config(tmp_db, sse_stream(server.url, backoff={"initial": "10ms", "max": "1s"}))
        runner = await capture_until(
            cfg, lambda r: r.stats["s"].events >= 8 and len(server.last_event_ids) >= 6
        )
        assert server.last_event_ids[:6] == [None, "a", "c", None, "d", "d"]
        assert len(server.last_event_ids) == 6  # the held sixth connection, resumed from "d"
    events, checkpoint = await read_back(cfg, "s")
    assert [(e.payload, e.cursor) for e in events] == [
        ("1", "a"),
        ("2", "a"),
        ("3", "a"),
        ("4", "b"),
        ("5", None),
        ("6", None),
        ("7", "d"),
        ("9", "d"),
    ]
    # own ids are keys; events without one are keyed by content
    assert [e.key for e in events] == ["a", h("2"), h("3"), "b", h("5"), h("6"), "d", h("9")]
    assert checkpoint == "d"
    assert await quarantined(cfg, "s") == []
    assert runner.stats["s"].reconnects == 5

    # a new process resumes from the stored checkpoint
    async with ScriptedSSE([]) as server:
        cfg = make_config(tmp_db, sse_stream(server.url))
        await capture_until(cfg, lambda r: len(server.last_event_ids) >= 1)
        assert server.last_event_ids == ["d"]


async def test_empty_last_event_id_keeps_the_stored_checkpoint_across_a_restart(
    tmp_db: Path,
) -> None:
    """Reset to empty in one run: that run reconnects without the header, the checkpoint stays
    at the last non-empty id, and the next run resumes from it."""
    async with ScriptedSSE([blocks("id: 5\ndata: a\n\n", "id:\ndata: b\n\n")]) as server:
        cfg = make_config(tmp_db, sse_stream(server.url))
        await capture_until(cfg, lambda r: len(server.last_event_ids) >= 2)
        assert server.last_event_ids == [None, None]
    events, checkpoint = await read_back(cfg, "s")
    assert [(e.payload, e.key, e.cursor) for e in events] == [("a", "5", "5"), ("b", h("b"), None)]
    assert checkpoint == "5"
    async with ScriptedSSE([]) as server:
        cfg = make_config(tmp_db, sse_stream(server.url))
        await capture_until(cfg, lambda r: len(server.last_event_ids) >= 1)
        assert server.last_event_ids == ["5"]


async def test_retry_is_the_least_delay_before_every_later_reconnect(tmp_db: Path) -> None:
    scripts = [
        blocks("id: 1\ndata: a\n\n"),  # no retry yet: reconnects within the backoff
        blocks("retry: 300\nid: 2\ndata: b\n\n"),
        blocks("id: 3\ndata: c\n\n"),  # no retry field: 300 ms still holds
        blocks("retry: x300\nid: 4\ndata: d\n\n"),  # not all digits: ignored
    ]
    async with ScriptedSSE(scripts) as server:
        cfg = make_config(tmp_db, sse_stream(server.url, backoff={"initial": "10ms", "max": "1s"}))
        await capture_until(cfg, lambda r: len(server.last_event_ids) >= 5, timeout=20)
    gaps = [server.began[i + 1] - server.ended[i] for i in range(4)]
    assert gaps[0] < 0.3, gaps
    for gap in gaps[1:]:
        assert 0.3 <= gap < 3.0, gaps
    assert server.last_event_ids[:5] == [None, "1", "2", "3", "4"]
    events, _ = await read_back(cfg, "s")
    assert [e.payload for e in events] == ["a", "b", "c", "d"]
