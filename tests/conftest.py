"""Shared fixtures: a real local provider on loopback, configs, and store read-back helpers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from longline.config import Config, parse_config
from longline.core.model import Totals
from longline.core.secrets import registered_secrets, set_secrets
from longline.engine.runner import Runner
from longline.stores import open_store
from longline.testing.provider import Provider

pytest.register_assert_rewrite("longline.testing.conformance")  # the suites' asserts explain
pytest_plugins = ["tests.services"]  # PostgreSQL, moto: fixtures for every module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Spread the reliability campaign's families evenly through the run, the first one first.

    They are the longest tests (a minute or two each). pytest-xdist hands each worker a
    contiguous share of the list, so spread out they start on different workers and run beside
    the short tests, instead of queueing on one worker or trailing after everything else.
    """
    long = [item for item in items if item.get_closest_marker("reliability")]
    rest = [item for item in items if not item.get_closest_marker("reliability")]
    step = len(items) / max(len(long), 1)
    for n, item in enumerate(long):
        rest.insert(round(n * step), item)
    items[:] = rest



@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs the CLI in the test process sets the root logger's level and handler
    (``setup_logging``, e.g. ``--log-level ERROR``); without this, the tests that run after it
    in the same process (a pytest-xdist worker) would see no WARNING or INFO in ``caplog``."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _secrets_restored() -> Iterator[None]:
    """The process-wide redaction list as it was before the test: a runner or the CLI run in
    the test process registers its config's secrets, and a short one (a test's "12") would be
    redacted from the texts of the tests after it in the same worker."""
    saved = registered_secrets()
    yield
    set_secrets(saved)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    p = Provider()
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def make_config(db: Path, *streams: dict[str, Any], **extra: Any) -> Config:
    """A validated config on a SQLite file with fast backoff defaults for tests."""
    out = []
    for s in streams:
        s = dict(s)
        s.setdefault("backoff", {"initial": "50ms", "max": "500ms"})
        s.setdefault("stall_timeout", "2s")
        out.append(s)
    data: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "streams": out,
        "writer": {"batch_max": 500, "batch_window": "10ms"},
    }
    data.update(extra)
    return parse_config(data)


async def wait_until(cond: Callable[[], bool], timeout: float) -> None:
    """Wait until ``cond()`` holds, checked every 20 ms; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        await asyncio.sleep(0.02)


async def capture_until(
    cfg: Config, done: Callable[[Runner], bool], timeout: float = 30.0
) -> Runner:
    """Run ``cfg`` until ``done(runner)`` holds (checked every 50 ms), then stop cleanly."""
    runner = Runner(cfg, status_interval=0.2)
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not task.done():
            if runner.stats and done(runner):
                break
            if loop.time() > deadline:
                raise AssertionError(f"timed out; stats: {runner.stats}")
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await task
    return runner


async def serve_until(
    cfg: Config, done: Callable[[Runner], bool], timeout: float = 30.0
) -> Runner:
    """Like ``capture_until``, with the processors of ``cfg`` delivering beside capture, as
    ``longline run`` composes them (``longline.App``)."""
    from longline.api import App

    app = App.from_config(cfg)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with app.running():
        runner = app.runner
        assert runner is not None
        while not (runner.stats and done(runner)):
            if loop.time() > deadline:
                raise AssertionError(f"timed out; stats: {runner.stats}")
            await asyncio.sleep(0.05)
    return runner


def events_at_least(n: int, stream: str | None = None) -> Callable[[Runner], bool]:
    def check(r: Runner) -> bool:
        names = [stream] if stream else list(r.stats)
        return all(r.stats[s].events >= n for s in names)

    return check


async def stored(cfg: Config, stream: str) -> list[tuple[int, bytes, str]]:
    """(id from the payload, payload bytes, key) of every stored event, in seq order."""
    out: list[tuple[int, bytes, str]] = []
    after = 0
    async with open_store(cfg.store) as store:
        while batch := await store.read(stream, after, 5000):
            for ev in batch:
                assert ev.seq == after + 1, "seq must be gapless"
                after = ev.seq
                out.append((int(orjson.loads(ev.payload)["id"]), ev.payload.encode(), ev.key))
    return out


async def totals(cfg: Config, stream: str) -> Totals:
    """The stream's totals as the store keeps them."""
    async with open_store(cfg.store) as store:
        return (await store.totals()).get(stream, Totals())


async def quarantined(cfg: Config, stream: str) -> list[str]:
    async with open_store(cfg.store) as store:
        return [q.reason for q in await store.read_quarantine(stream, 0, 100_000)]
