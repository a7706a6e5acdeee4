"""Test helpers: a scripted webhook receiver on loopback, stores with events, dispatch loops."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from longline.config import Config, parse_config
from longline.core.model import Event, StoredEvent
from longline.delivery.dispatcher import Dispatcher
from longline.processors.base import ProcessorError
from longline.stores import SQLiteStore
from longline.testing.conformance.processors import dispatch_until  # noqa: F401 (for the tests)

DUMMY_URL = "http://127.0.0.1:9/sse/unused"


@dataclass
class Reply:
    """How the hook answers one request: ``status`` after ``delay`` seconds."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    text: str = "hook says no\n"


@dataclass
class Received:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    status: int | None = None  # None: the client gave up before the answer

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.body["events"]]


class Hook:
    """A webhook receiver: answers from ``script`` (then 200), or 400 to a batch with a
    ``poison`` seq; records every request and checks its signature when given a secret."""

    def __init__(self, secret: str | None = None, delay: float = 0.0) -> None:
        self.secret = secret
        self.delay = delay
        self.script: list[Reply] = []
        self.poison: set[int] = set()
        self.requests: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def delivered(self) -> list[int]:
        """Seqs of every batch answered 2xx, in arrival order."""
        return [s for r in self.requests if r.status == 200 for s in r.seqs]

    def signature_ok(self, r: Received) -> bool:
        assert self.secret is not None
        want = "sha256=" + hmac.new(self.secret.encode(), r.raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(r.headers.get("X-Longline-Signature", ""), want)

    async def start(self) -> None:
        """Listen on a free port, or on the same port again after ``stop()``."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the server and its connections: the receiver is gone (connections refused)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rec = Received(orjson.loads(raw), raw, dict(request.headers))
        self.requests.append(rec)
        reply = self.script.pop(0) if self.script else Reply()
        if self.poison & set(rec.seqs):
            reply = Reply(400)
        await asyncio.sleep(reply.delay or self.delay)
        rec.status = reply.status
        return web.Response(status=reply.status, headers=reply.headers, text=reply.text)


def event(i: int) -> Event:
    return Event(
        key=f"k{i}", payload=orjson.dumps({"id": i}).decode(), cursor=str(i), received_at=i
    )


async def filled_store(db: Path, n: int, stream: str = "s") -> SQLiteStore:
    """An open store holding events 1..n of ``stream`` (key ``k<i>``, payload ``{"id": i}``)."""
    store = SQLiteStore(db)
    await store.open()
    if n:
        await store.append(stream, [event(i) for i in range(1, n + 1)])
    return store


def config(db: Path, *processors: dict[str, Any], streams: Sequence[str] = ("s",)) -> Config:
    return parse_config(
        {
            "store": f"sqlite:///{db}",
            "streams": [{"name": s, "transport": "sse", "url": DUMMY_URL} for s in streams],
            "processors": list(processors),
        }
    )


def python_proc(name: str = "p", **extra: Any) -> dict[str, Any]:
    """A processor entry whose instance the test injects (the target is never imported)."""
    return {"name": name, "kind": "python", "target": "tests.nowhere:nothing", **extra}


FAST_RETRY = {"max_attempts": 8, "initial": "5ms", "max": "20ms"}


class Recorder:
    """An in-memory processor: ``fail(seqs_in_batch, call_number)`` returns an error to raise."""

    def __init__(
        self, fail: Callable[[list[int], int], ProcessorError | None] | None = None
    ) -> None:
        self.fail = fail
        self.calls = 0
        self.batches: list[list[int]] = []
        self.started = self.closed = False

    @property
    def delivered(self) -> list[int]:
        return [s for b in self.batches for s in b]

    async def start(self) -> None:
        self.started = True

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        self.calls += 1
        seqs = [e.seq for e in events]
        err = self.fail(seqs, self.calls) if self.fail else None
        if err is not None:
            raise err
        self.batches.append(seqs)

    async def close(self) -> None:
        self.closed = True


async def dispatch_through_outage(
    cfg: Config,
    store: SQLiteStore,
    lane: tuple[str, str],
    cut: Callable[[], Awaitable[None]],
    restore: Callable[[], Awaitable[None]],
    *,
    before: int,
    during: int,
    timeout: float = 30.0,
) -> Dispatcher:
    """A sink outage through a running dispatcher, for real: events 1..``before`` are
    delivered, the sink is ``cut``, ``during`` more events are stored, and the sink stays down
    until the lane has retried three times as often as ``retry.max_attempts`` allows for one
    batch; then it is restored and the dispatcher runs until everything was acknowledged."""
    d = Dispatcher(cfg, store, poll=0.02)
    task = asyncio.create_task(d.run())
    stats = d.stats[lane]
    attempts = cfg.processors[0].retry.max_attempts
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def until(done: Callable[[], bool], what: str) -> None:
        while not done():
            if task.done() or loop.time() > deadline:
                raise AssertionError(f"dispatch did not {what}: {d.stats}")
            await asyncio.sleep(0.02)

    try:
        await until(lambda: stats.cursor >= before, "deliver before the outage")
        await cut()
        last = before + during
        await store.append(lane[1], [event(i) for i in range(before + 1, last + 1)])
        await until(lambda: stats.retries >= 3 * attempts, "retry through the outage")
        await restore()
        await until(lambda: stats.cursor >= last, "catch up after the outage")
    finally:
        d.stop()
        await task
    return d


def caught_up(n: int) -> Callable[[Dispatcher], bool]:
    """Every lane acknowledged up to seq ``n``."""
    return lambda d: all(s.cursor >= n for s in d.stats.values())
