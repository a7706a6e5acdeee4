"""``kind: python``: sync and async targets imported by name, exceptions become retries."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from longline.processors.base import ProcessorError
from longline.processors.python import PythonProcessor
from longline.processors.registry import build_processor
from tests.processors.helpers import caught_up, config, dispatch_until, filled_store

RECEIVED: list[tuple[str, list[dict[str, Any]]]] = []


def sync_handler(events: list[dict[str, Any]]) -> None:
    RECEIVED.append((threading.current_thread().name, events))


async def async_handler(events: list[dict[str, Any]]) -> None:
    await asyncio.sleep(0)
    RECEIVED.append(("async", events))


class Handlers:
    @staticmethod
    def nested(events: list[dict[str, Any]]) -> None:
        RECEIVED.append(("nested", events))


def broken(events: list[dict[str, Any]]) -> None:
    raise KeyError("missing field")


def refuses(events: list[dict[str, Any]]) -> None:
    raise ProcessorError("bad batch", permanent=True)


NOT_CALLABLE = 3
MODULE = "tests.processors.test_python"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RECEIVED.clear()


def proc(target: str) -> PythonProcessor:
    cfg = config(Path("x.db"), {"name": "p", "kind": "python", "target": target})
    built = build_processor(cfg.processors[0])
    assert isinstance(built, PythonProcessor)
    return built


async def test_sync_target_runs_in_a_thread_with_event_dicts(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "p.db", 2)
    try:
        evs = await store.read("s", 0, 10)
    finally:
        await store.close()
    p = proc(f"{MODULE}:sync_handler")
    await p.start()
    await p.deliver("s", evs)
    await p.close()
    ((thread, events),) = RECEIVED
    assert thread != threading.current_thread().name
    assert events == [
        {
            "stream": "s",
            "seq": i,
            "key": f"k{i}",
            "cursor": str(i),
            "received_at": float(i),
            "payload": {"id": i},
            "event": None,
        }
        for i in (1, 2)
    ]


async def test_async_and_nested_targets(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "p.db", 1)
    try:
        evs = await store.read("s", 0, 10)
    finally:
        await store.close()
    for name in ("async_handler", "Handlers.nested"):
        p = proc(f"{MODULE}:{name}")
        await p.deliver("s", evs)  # starts itself when needed
    assert [(who, [e["seq"] for e in events]) for who, events in RECEIVED] == [
        ("async", [1]),
        ("nested", [1]),
    ]


@pytest.mark.parametrize(
    "target", ["tests.processors.no_such_module:f", f"{MODULE}:missing", f"{MODULE}:NOT_CALLABLE"]
)
async def test_unimportable_target_is_permanent(target: str) -> None:
    with pytest.raises(ProcessorError) as info:
        await proc(target).start()
    assert info.value.permanent


async def test_exceptions_become_retryable_errors_unless_permanent(tmp_path: Path) -> None:
    store = await filled_store(tmp_path / "p.db", 1)
    try:
        evs = await store.read("s", 0, 10)
    finally:
        await store.close()
    with pytest.raises(ProcessorError) as info:
        await proc(f"{MODULE}:broken").deliver("s", evs)
    assert (str(info.value), info.value.permanent) == ("KeyError: 'missing field'", False)
    with pytest.raises(ProcessorError) as info:
        await proc(f"{MODULE}:refuses").deliver("s", evs)
    assert (str(info.value), info.value.permanent) == ("bad batch", True)


async def test_dispatched_through_config_target(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = await filled_store(db, 25)
    cfg = config(
        db, {"name": "p", "kind": "python", "target": f"{MODULE}:sync_handler", "batch": 10}
    )
    try:
        await dispatch_until(cfg, store, caught_up(25))
    finally:
        await store.close()
    assert [[e["seq"] for e in events] for _, events in RECEIVED] == [
        list(range(1, 11)),
        list(range(11, 21)),
        list(range(21, 26)),
    ]
