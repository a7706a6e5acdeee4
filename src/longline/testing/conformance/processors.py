"""The processor conformance suite: what every ``processors:`` kind must do.

Each test runs the real dispatcher (or ``longline dispatch`` in a subprocess, for the crash) on
a real SQLite store, and reads back what reached the harness's sink:

- order: each stream's events arrive in ``seq`` order, each once, with their ``stream``,
  ``seq`` and dedup ``key`` (the idempotency key a consumer drops repeats by);
- retries: while the sink is down, deliveries fail and are retried; once it is back, every
  event arrives, nothing skipped;
- dead letters: after ``retry.max_attempts`` failed attempts the batch's events become dead
  letters (with the attempt count) and the lane moves on to later events; unless the harness
  says its ``down`` is a fault the kind reports as the sink being unavailable
  (``down_is_unavailable``: a refused connection, HTTP 503), which is waited for past
  ``retry.max_attempts``, nothing dead-lettered, everything delivered in order once it is up;
- at least once across a crash: ``longline dispatch`` killed with SIGKILL mid-delivery and
  restarted delivers every event; only what was in flight is repeated.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import orjson
import pytest
import yaml

from longline.config import Config, parse_config
from longline.core.model import Event
from longline.delivery.dispatcher import Dispatcher
from longline.processors.base import Processor
from longline.stores.sqlite import SQLiteStore

__all__ = ["Delivered", "ProcessorConformance", "ProcessorHarness", "dispatch_until"]


async def dispatch_until(
    cfg: Config,
    store: SQLiteStore,
    done: Callable[[Dispatcher], bool],
    processors: dict[str, Processor] | None = None,
    timeout: float = 15.0,
) -> Dispatcher:
    """Run a dispatcher on ``store`` until ``done(dispatcher)`` holds, then stop it cleanly;
    fail (``AssertionError`` with its lanes' stats) if it ends or ``timeout`` passes first.
    ``processors``: instances to use instead of building them from ``cfg``."""
    d = Dispatcher(cfg, store, poll=0.02, processors=processors)
    task = asyncio.create_task(d.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not done(d):
            if task.done() or loop.time() > deadline:
                raise AssertionError(f"the dispatcher did not get there: {d.stats}")
            await asyncio.sleep(0.02)
    finally:
        d.stop()
        await task
    return d


class Delivered(NamedTuple):
    """One event as the sink received it: its idempotency key is ``(stream, seq)`` or ``key``."""

    stream: str
    seq: int
    key: str


class ProcessorHarness(ABC):
    """Drives one kind's sink: a real server (or file, or program) the processor delivers to.

    ``name`` is the processor's name, unique per harness so that what a server keeps between
    tests (dedup markers, queues) never mixes two tests.
    """

    down_is_unavailable: ClassVar[bool] = False
    """True when the kind reports ``down``'s fault as the sink being unavailable
    (``ProcessorError(unavailable=True)``): the dispatcher then waits instead of dead-lettering."""

    def __init__(self) -> None:
        self.name = f"conf-{uuid.uuid4().hex[:10]}"

    def env(self) -> dict[str, str]:
        """Extra environment for ``longline dispatch`` subprocesses (test server credentials)."""
        return {}

    @abstractmethod
    def entry(self) -> dict[str, Any]:
        """The ``processors:`` entry (``name``, ``kind`` and the kind's fields) for the sink."""

    @abstractmethod
    async def delivered(self) -> list[Delivered]:
        """Every event the sink received so far, in arrival order, repeats included."""

    @abstractmethod
    async def down(self) -> None:
        """Make deliveries fail, as a transient fault (server gone, refusing), until ``up``."""

    @abstractmethod
    async def up(self) -> None:
        """End the fault of ``down``."""


def _event(stream: str, i: int) -> Event:
    payload = orjson.dumps({"id": i, "stream": stream}).decode()
    return Event(key=f"{stream}-k{i}", payload=payload, cursor=str(i), received_at=float(i))


def _expected(stream: str, seqs: Sequence[int]) -> list[Delivered]:
    return [Delivered(stream, i, f"{stream}-k{i}") for i in seqs]


class ProcessorConformance:
    """Subclass as ``TestMyKind(ProcessorConformance)`` and define a ``harness`` fixture."""

    streams: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    fast_retry: ClassVar[dict[str, Any]] = {"max_attempts": 1000, "initial": "10ms", "max": "50ms"}
    crash_events: ClassVar[int] = 3000
    """Events per stream in the crash test: enough that the kill comes mid-delivery."""
    crash_batch: ClassVar[int] = 3

    # -- helpers ------------------------------------------------------------------------

    def config_data(self, harness: ProcessorHarness, db: Path, **fields: Any) -> dict[str, Any]:
        """The config as YAML-ready data: the harness's entry, fast retries, a SQLite store."""
        entry = {**harness.entry(), "retry": self.fast_retry, **fields}
        streams = [
            {"name": s, "transport": "sse", "url": "http://127.0.0.1:9/unused"}
            for s in self.streams
        ]
        return {"store": f"sqlite:///{db}", "streams": streams, "processors": [entry]}

    def config(self, harness: ProcessorHarness, db: Path, **fields: Any) -> Config:
        """The parsed config (``${VAR}`` from the environment, as ``longline dispatch`` does)."""
        return parse_config(self.config_data(harness, db, **fields), env=os.environ)

    async def store_with(self, db: Path, n: int, first: int = 1) -> SQLiteStore:
        """An open SQLite store holding events ``first``..``first + n - 1`` on every stream."""
        store = SQLiteStore(db)
        await store.open()
        for stream in self.streams:
            await store.append(stream, [_event(stream, i) for i in range(first, first + n)])
        return store

    async def dispatch_until(
        self, cfg: Config, store: SQLiteStore, done: Callable[[Dispatcher], bool], timeout: float
    ) -> Dispatcher:
        """Run a dispatcher on ``store`` until ``done`` holds (or fail after ``timeout``)."""
        return await dispatch_until(cfg, store, done, timeout=timeout)

    @staticmethod
    def caught_up(n: int) -> Callable[[Dispatcher], bool]:
        """True once every lane's cursor has reached ``n``."""
        return lambda d: all(s.cursor >= n for s in d.stats.values())

    def by_stream(self, got: list[Delivered]) -> dict[str, list[Delivered]]:
        """What the sink received, per stream, in arrival order."""
        return {s: [d for d in got if d.stream == s] for s in self.streams}

    # -- the suite ----------------------------------------------------------------------

    async def test_order_each_once_with_keys(
        self, harness: ProcessorHarness, tmp_path: Path
    ) -> None:
        """Every stream's events arrive once, in ``seq`` order, with stream, seq and key."""
        db = tmp_path / "order.db"
        store = await self.store_with(db, 23)
        try:
            cfg = self.config(harness, db, batch=5)
            d = await self.dispatch_until(cfg, store, self.caught_up(23), 60)
        finally:
            await store.close()
        assert {k: (s.delivered, s.dead) for k, s in d.stats.items()} == {
            (harness.name, s): (23, 0) for s in self.streams
        }
        got = self.by_stream(await harness.delivered())
        assert got == {s: _expected(s, range(1, 24)) for s in self.streams}

    async def wait_for(
        self, d: Dispatcher, task: asyncio.Task[Any], done: Callable[[Dispatcher], bool]
    ) -> None:
        """Wait until ``done`` holds; fails if the dispatcher ends first or after 60 s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not done(d):
            if task.done() or loop.time() > deadline:
                raise AssertionError(f"the dispatcher did not get there: {d.stats}")
            await asyncio.sleep(0.02)

    async def append(self, store: SQLiteStore, seqs: range) -> None:
        """Append events ``seqs`` to every stream."""
        for stream in self.streams:
            await store.append(stream, [_event(stream, i) for i in seqs])

    async def test_retries_until_the_sink_is_back(
        self, harness: ProcessorHarness, tmp_path: Path
    ) -> None:
        """A sink that goes down is retried, nothing dead-lettered; when it is back every event
        arrives, first arrivals in order."""
        db = tmp_path / "retry.db"
        store = await self.store_with(db, 4)
        d = Dispatcher(self.config(harness, db, batch=4), store, poll=0.02)
        task = asyncio.create_task(d.run())
        try:
            await self.wait_for(d, task, self.caught_up(4))  # started and delivering
            await harness.down()
            await self.append(store, range(5, 13))
            await self.wait_for(d, task, lambda d: all(s.retries >= 2 for s in d.stats.values()))
            assert all(s.cursor == 4 and s.dead == 0 for s in d.stats.values()), d.stats
            await harness.up()
            await self.wait_for(d, task, self.caught_up(12))
        finally:
            d.stop()
            await harness.up()
            await task
            await store.close()
        for stream, got in self.by_stream(await harness.delivered()).items():
            assert sorted(set(got)) == _expected(stream, range(1, 13))  # none missing
            firsts = [g.seq for i, g in enumerate(got) if g not in got[:i]]
            assert firsts == list(range(1, 13))  # in order

    async def test_dead_letters_after_max_attempts_then_moves_on(
        self, harness: ProcessorHarness, tmp_path: Path
    ) -> None:
        """Or, for a sink whose ``down`` the kind reports as unavailable, waits past them."""
        db = tmp_path / "dead.db"
        store = await self.store_with(db, 3)
        retry: dict[str, Any] = {"max_attempts": 2, "initial": "10ms", "max": "20ms"}
        d = Dispatcher(self.config(harness, db, batch=6, retry=retry), store, poll=0.02)
        task = asyncio.create_task(d.run())
        if harness.down_is_unavailable:
            try:
                await self.wait_for(d, task, self.caught_up(3))
                await harness.down()
                await self.append(store, range(4, 10))
                past = 3 * retry["max_attempts"]  # retries, for a batch allowed 2 attempts
                await self.wait_for(
                    d, task, lambda d: all(s.retries >= past for s in d.stats.values())
                )
                assert all(s.cursor == 3 and s.dead == 0 for s in d.stats.values()), d.stats
                await harness.up()
                await self.wait_for(d, task, self.caught_up(9))
                assert await store.dead_letters(harness.name) == []
            finally:
                d.stop()
                await harness.up()
                await task
                await store.close()
            for stream, seen in self.by_stream(await harness.delivered()).items():
                firsts = [g.seq for i, g in enumerate(seen) if g not in seen[:i]]
                assert firsts == list(range(1, 10)), (stream, seen)  # all, in order
            return
        try:
            await self.wait_for(d, task, self.caught_up(3))
            await harness.down()
            await self.append(store, range(4, 10))
            await self.wait_for(d, task, self.caught_up(9))  # given up on: dead letters
            await harness.up()
            assert {k: (s.delivered, s.dead) for k, s in d.stats.items()} == {
                (harness.name, s): (3, 6) for s in self.streams
            }
            dead = await store.dead_letters(harness.name)
            assert sorted((x.stream, x.seq, x.key, x.attempts) for x in dead) == sorted(
                (s, i, f"{s}-k{i}", 2) for s in self.streams for i in range(4, 10)
            )
            before = {s: len(got) for s, got in self.by_stream(await harness.delivered()).items()}
            await self.append(store, range(10, 13))
            await self.wait_for(d, task, self.caught_up(12))  # the lane moved on
        finally:
            d.stop()
            await harness.up()
            await task
            await store.close()
        got = self.by_stream(await harness.delivered())
        assert before == {s: 3 for s in self.streams}  # nothing of the dead letters arrived
        assert got == {s: _expected(s, [1, 2, 3, 10, 11, 12]) for s in self.streams}

    @pytest.mark.timeout(300)
    async def test_at_least_once_across_a_crash(
        self, harness: ProcessorHarness, tmp_path: Path
    ) -> None:
        """``longline dispatch`` killed mid-delivery and restarted: every event arrives, only
        the batch in flight repeats."""
        n, batch = self.crash_events, self.crash_batch
        db = tmp_path / "crash.db"
        store = await self.store_with(db, n)
        await store.close()
        path = tmp_path / "dispatch.yaml"
        data = self.config_data(harness, db, batch=batch)
        path.write_text(yaml.safe_dump(data))
        total = n * len(self.streams)
        env = {**os.environ, **harness.env(), "LONGLINE_LOG_LEVEL": "WARNING"}
        cmd = [sys.executable, "-m", "longline", "dispatch", str(path)]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        watch = SQLiteStore(db)  # the lanes' acknowledged cursors: cheap to poll, any sink
        await watch.open()
        try:
            for _ in range(3000):  # kill it once it has delivered something, not everything
                cursors = [await watch.delivery_cursor(harness.name, s) for s in self.streams]
                if any(cursors) or proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
        finally:
            await watch.close()
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        at_kill = len(await harness.delivered())
        assert 0 < at_kill < total, f"the kill came at {at_kill} of {total}: not mid-delivery"
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        try:
            for _ in range(1200):
                if len(set(await harness.delivered())) >= total or proc.poll() is not None:
                    break
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        got = await harness.delivered()
        assert len(set(got)) == total, err.decode()[-2000:]
        for stream, mine in self.by_stream(got).items():
            assert sorted(set(mine)) == _expected(stream, range(1, n + 1))
            repeats = len(mine) - n
            # Only the batch in flight when the process died (per lane) is delivered again.
            assert 0 <= repeats <= batch, f"{stream}: {repeats} repeats"
