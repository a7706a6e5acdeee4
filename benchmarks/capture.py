"""longline's own figures: the real ``Runner`` capturing from the provider process.

Each function builds a config with ``parse_config``, runs the engine until the wanted number of
events is committed, and returns what it measured. Keys are the provider's event ids (``$.id``,
or the SSE id) unless ``key`` says otherwise, so the store sees the same keys as ``raw_sqlite``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from longline.api import App
from longline.config import parse_config
from longline.core.model import AppendResult, Event
from longline.engine.runner import Runner
from longline.stores.base import Store
from longline.stores.sqlite.store import SQLiteStore

POLL = 0.002  # seconds between progress checks while a capture runs
STREAM = "bench"


def stream_config(
    url: str, transport: str, *, key: str = "$.id", redundancy: int = 1
) -> dict[str, Any]:
    """One stream keyed like the baselines; resumable so a reconnect would not double count.
    ``ws_plain`` is ws with ``options: {compression: false}`` (no permessage-deflate)."""
    stream: dict[str, Any] = {
        "name": STREAM,
        "transport": transport,
        "url": url,
        "redundancy": redundancy,
        "stall_timeout": "30s",
    }
    if transport == "ws_plain":
        stream.update(transport="ws", options={"compression": False})
    if transport == "sse":
        if key != "$.id":
            stream["key"] = key
    else:
        stream.update(key=key, cursor="$.id", resume={"query": "since"})
    return stream


async def capture(
    url: str,
    transport: str,
    n: int,
    db: Path,
    *,
    store: Store | None = None,
    key: str = "$.id",
    redundancy: int = 1,
    extra: dict[str, Any] | None = None,
) -> float:
    """Capture until ``n`` events are committed; return events/s (store open and connect
    included). With no ``store`` the config's SQLite file ``db`` is used and checked."""
    data: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "streams": [stream_config(url, transport, key=key, redundancy=redundancy)],
    }
    data.update(extra or {})
    config = parse_config(data, env={})
    start = time.perf_counter()
    if config.processors:  # delivered beside capture, as `longline run` composes them
        if store is not None:
            raise ValueError("processors run on the config's store: pass no store")
        elapsed = await _serve_until(App.from_config(config), n, timeout=max(60.0, n / 2000))
    else:
        runner = Runner(config, store=store)
        elapsed = await _run_until(runner, n, timeout=max(60.0, n / 2000))
    if store is None:
        stored = _count(db)
        if stored != n:
            raise RuntimeError(f"{transport}: stored {stored} events, expected {n}")
    return n / (elapsed - start)


async def capture_streams(
    urls: Sequence[str], transport: str, n: int, store_url: str, store: Store | None = None
) -> float:
    """Capture one stream per URL (``bench0``, ``bench1``, ...) into ``store_url`` (or the open-
    able ``store``) until ``n`` events in all are committed; return events/s. The caller checks
    what was stored: only it knows how to read that store."""
    streams = [
        {**stream_config(url, transport), "name": f"{STREAM}{i}"} for i, url in enumerate(urls)
    ]
    runner = Runner(parse_config({"store": store_url, "streams": streams}, env={}), store=store)
    names = tuple(s["name"] for s in streams)
    start = time.perf_counter()
    elapsed = await _run_until(runner, n, timeout=max(60.0, n / 2000), names=names)
    return n / (elapsed - start)


async def _run_until(
    runner: Runner, n: int, timeout: float, names: Sequence[str] = (STREAM,)
) -> float:
    """Run ``runner`` until ``n`` events are committed over the streams ``names``; return
    ``perf_counter`` at that moment."""
    task = asyncio.create_task(runner.run())
    deadline = time.perf_counter() + timeout
    try:
        while True:
            stats = [runner.stats.get(name) for name in names]
            if sum(s.events for s in stats if s is not None) >= n:
                return time.perf_counter()
            if task.done():
                raise RuntimeError(f"the runner ended early: {runner.stats}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"capture timed out: {runner.stats}")
            await asyncio.sleep(POLL)
    finally:
        runner.stop()
        await task


async def _serve_until(app: App, n: int, timeout: float) -> float:
    """``_run_until`` for an App (capture and delivery): until ``n`` events of ``STREAM`` are
    committed; returns ``perf_counter`` at that moment."""
    deadline = time.perf_counter() + timeout
    async with app.running():
        while True:
            status = app.status().streams[STREAM]
            if status.events >= n:
                return time.perf_counter()
            if status.state == "failed":
                raise RuntimeError(f"the stream failed: {status}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"capture timed out: {status}")
            await asyncio.sleep(POLL)


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT COUNT(*) FROM events WHERE stream = ?", (STREAM,)).fetchone()[0]
        )
    finally:
        conn.close()


class TimedStore:
    """Wraps a store and records, per committed event, commit time minus ``received_at``.

    The commit time is taken when ``append`` returns to the event loop, which is when the writer
    acknowledges the batch; ``received_at`` is stamped by the writer when the bytes were framed.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.samples = array("d")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(
        self, stream: str, events: Sequence[Event], *args: Any, **kw: Any
    ) -> AppendResult:
        """Append through the wrapped store, then record each event's latency."""
        result: AppendResult = await self.inner.append(stream, events, *args, **kw)
        now = time.time()
        self.samples.extend([now - ev.received_at for ev in events])
        return result


async def latency(url: str, transport: str, n: int, db: Path) -> dict[str, float]:
    """Capture ``n`` events of a paced feed into SQLite through ``TimedStore``; returns the
    achieved rate and receive-to-commit percentiles in ms."""
    data = {"store": f"sqlite:///{db}", "streams": [stream_config(url, transport)]}
    timed = TimedStore(SQLiteStore(db))
    runner = Runner(parse_config(data, env={}), store=cast(Store, timed))
    start = time.perf_counter()
    end = await _run_until(runner, n, timeout=n / 1000 + 60)
    samples = sorted(timed.samples)
    if len(samples) < n:
        raise RuntimeError(f"latency: {len(samples)} samples for {n} events")
    return {
        "rate": n / (end - start),
        "p50_ms": _pct(samples, 0.50) * 1000,
        "p90_ms": _pct(samples, 0.90) * 1000,
        "p99_ms": _pct(samples, 0.99) * 1000,
        "p999_ms": _pct(samples, 0.999) * 1000,
        "max_ms": samples[-1] * 1000,
    }


def _pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def sleepy(events: list[dict[str, Any]]) -> None:
    """A deliberately slow processor: one second per batch, whatever its size."""
    time.sleep(1.0)


def slow_processor_config() -> dict[str, Any] | None:
    """Config keys adding a ``python`` processor that runs ``sleepy``, or None when this
    longline has no ``processors:`` setting yet."""
    extra = {
        "processors": [{"name": "sleepy", "kind": "python", "target": "benchmarks.capture:sleepy"}]
    }
    probe = {"streams": [stream_config("ws://127.0.0.1:1/x", "ws")], **extra}
    try:
        parse_config(probe, env={})
    except Exception:  # no processors support (yet), or not the python kind
        return None
    return extra
