"""MemoryStore specifics: URLs, sharing by name, lifetime, wake-ups, and a real capture into it
(the shared contract, which it passes like the real backends, is in tests/contract/)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from longline.core.model import AppendResult, Event, Quarantined, Totals
from longline.stores import MemoryStore, StoreError, open_store
from longline.stores.memory import forget
from longline.testing.provider import Provider, event_bytes
from tests.conftest import capture_until, events_at_least, make_config, stored


def ev(key: str, cursor: str | None = None) -> Event:
    return Event(key=key, payload=f'{{"k":"{key}"}}', cursor=cursor, received_at=1.0)


@pytest.fixture
def name() -> Iterator[str]:
    n = f"t-{uuid.uuid4().hex}"
    yield n
    forget(n)


def test_urls() -> None:
    named = open_store("memory://app-tests")
    assert isinstance(named, MemoryStore) and named.name == "app-tests"
    private = open_store("MEMORY://")
    assert isinstance(private, MemoryStore) and private.name is None
    for bad in ("memory:///x", "memory://x/y", "memory://x?shared=1", "memory://x#y"):
        with pytest.raises(StoreError, match=r"looks like memory://NAME"):
            open_store(bad)


async def test_one_name_one_store_across_instances_and_reopening(name: str) -> None:
    async with open_store(f"memory://{name}") as a:
        await a.append("s", [ev("a", "c-a")])
        async with open_store(f"memory://{name}") as b:
            assert await b.append("s", [ev("a"), ev("b", "c-b")]) == AppendResult(1, 1, 2)
        assert [e.key for e in await a.read("s")] == ["a", "b"]
    async with open_store(f"memory://{name}") as c:  # every instance closed: contents stay
        assert await c.checkpoint("s") == "c-b"
    forget(name)
    async with open_store(f"memory://{name}") as d:
        assert await d.read("s") == [] and await d.checkpoint("s") is None


async def test_a_private_store_is_its_own_and_survives_reopening() -> None:
    one, two = MemoryStore(), MemoryStore()
    async with one, two:
        await one.append("s", [ev("a")])
        assert await two.last_seq("s") == 0
    async with one:
        assert await one.last_seq("s") == 1


async def test_totals_are_shared_by_name_and_kept_after_close(name: str) -> None:
    async with MemoryStore(name) as a:
        await a.append("s", [ev("a"), ev("a")], reconnects=2)
        await a.quarantine("s", [Quarantined("bad json", b"{", 1.0)])
    async with MemoryStore(name) as b:
        assert await b.totals() == {"s": Totals(1, duplicates=1, quarantined=1, reconnects=2)}


async def test_a_reading_open_never_creates_a_named_store(name: str) -> None:
    with pytest.raises(StoreError, match=f"no memory store memory://{name} in this process"):
        await open_store(f"memory://{name}", create=False).open()
    async with open_store(f"memory://{name}"):
        pass
    async with open_store(f"memory://{name}", create=False) as store:  # now it exists
        assert await store.totals() == {}
    async with open_store("memory://", create=False) as private:  # a private one: its own
        assert await private.last_seq("s") == 0


async def test_calls_before_open_are_refused() -> None:
    store = MemoryStore("never-opened")
    with pytest.raises(StoreError, match=r"memory://never-opened is not open"):
        await store.append("s", [ev("a")])
    with pytest.raises(StoreError, match="not open"):
        await store.get_lease("s")


async def test_an_append_wakes_a_waiting_dispatcher_at_once(name: str) -> None:
    async with MemoryStore(name) as dispatcher_side, MemoryStore(name) as writer_side:
        waiter = asyncio.create_task(dispatcher_side.wait_for_events(60))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await writer_side.append("s", [ev("a")])
        await asyncio.wait_for(waiter, 5)  # far less than its 60 s timeout
        await writer_side.append("s", [ev("a")])  # nothing new: no wake-up
        loop = asyncio.get_running_loop()
        started = loop.time()
        await dispatcher_side.wait_for_events(0.2)
        assert loop.time() - started >= 0.19


async def test_capture_into_memory_resumes_across_cuts_exactly(
    provider: Provider, tmp_path: Path, name: str
) -> None:
    """What a user's test does: run a real config against a feed, read the store back."""
    total = 500
    url = provider.url("sse", "cut", total=total, cut_every=97)
    cfg = make_config(tmp_path / "unused.db", {"name": "s", "transport": "sse",
                                                "key": "$.id", "url": url},
                      store=f"memory://{name}")
    runner = await capture_until(cfg, events_at_least(total))
    rows = await stored(cfg, "s")  # another instance on the same name
    assert [r[0] for r in rows] == list(range(1, total + 1))
    assert all(payload == event_bytes("cut", i) for i, payload, _ in rows)
    assert runner.stats["s"].reconnects >= total // 97
    async with open_store(cfg.store) as store:
        assert await store.checkpoint("s") == str(total)
    assert not (tmp_path / "unused.db").exists()


def test_commands_refuse_a_memory_store(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"store": "memory://x", "streams": [
        {"name": "s", "transport": "sse", "key": "$.id", "url": "http://127.0.0.1:9/x"}]}))
    for args in (["run", str(config), "--duration", "1"], ["status", str(config)]):
        done = subprocess.run([sys.executable, "-m", "longline", *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (f"{config}: store: memory:// lives in one process;"
                               " a command needs a real store\n")
