"""``kind: redis`` against the Redis server on 127.0.0.1:6379 (``LONGLINE_TEST_REDIS``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from longline.config import ConfigError
from longline.core.model import StoredEvent
from longline.delivery.dispatcher import Dispatcher
from longline.processors.base import ProcessorError, event_dict
from longline.processors.redis import RedisProcessor, entry_fields
from longline.processors.registry import build_processor
from tests.processors.bus_helpers import TcpProxy, closed_port
from tests.processors.helpers import (
    FAST_RETRY,
    caught_up,
    config,
    dispatch_through_outage,
    dispatch_until,
    filled_store,
)
from tests.services import service_missing

redis_asyncio = pytest.importorskip("redis.asyncio")
REDIS_URL = os.environ.get("LONGLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    """A client of the test server; every key the test made (``lltest-*``) is deleted after."""
    client = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        service_missing(f"Redis at {REDIS_URL} does not answer: {type(exc).__name__}: {exc}")
    try:
        yield client
    finally:
        for pattern in ("lltest-*", "longline:dedup:lltest-*"):
            keys = [k async for k in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def name() -> str:
    """A processor name (and key prefix) of this test alone."""
    return f"lltest-{uuid.uuid4().hex[:10]}"


def entry(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "redis", "url": REDIS_URL, "stream_key": f"{name}:{{stream}}"}


def proc(name: str, **extra: Any) -> RedisProcessor:
    built = build_processor(config(Path("r.db"), {**entry(name), **extra}).processors[0])
    assert isinstance(built, RedisProcessor)
    return built


def events(*seqs: int) -> list[StoredEvent]:
    """Stored events with a JSON payload, except seq 2 (text, with an SSE type and a cursor)."""
    return [
        StoredEvent(s, f"k{s}", "c2", 2.5, "plain text", "tick")
        if s == 2
        else StoredEvent(s, f"k{s}", None, float(s), f'{{"id": {s}, "n": [1, 2]}}')
        for s in seqs
    ]


async def entries(client: Any, key: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in await client.xrange(key)
    ]


async def delivered(client: Any, proc: RedisProcessor, *batches: list[StoredEvent]) -> None:
    await proc.start()
    try:
        for batch in batches:
            await proc.deliver("s", batch)
    finally:
        await proc.close()


async def test_xadd_one_entry_per_event_in_order(server: Any, name: str) -> None:
    await delivered(server, proc(name), events(1, 2, 3))
    base = {"stream": "s", "seq": "1", "key": "k1", "received_at": "1.0"}
    assert await entries(server, f"{name}:s") == [
        {**base, "payload": '{"id":1,"n":[1,2]}'},
        {**base, "seq": "2", "key": "k2", "cursor": "c2", "received_at": "2.5",
         "payload": '"plain text"', "event": "tick"},
        {**base, "seq": "3", "key": "k3", "received_at": "3.0", "payload": '{"id":3,"n":[1,2]}'},
    ]  # fmt: skip


def test_entry_fields_carry_the_event_dict() -> None:
    (ev,) = events(2)
    fields = entry_fields("s", ev)
    as_dict = dict(zip(fields[::2], fields[1::2], strict=True))
    want = {k: str(v) for k, v in event_dict("s", ev).items() if k != "payload"}
    assert as_dict == {**want, "payload": '"plain text"'}


async def test_redelivery_within_the_window_adds_nothing(server: Any, name: str) -> None:
    p = proc(name, dedup_window="1m")
    await delivered(server, p, events(1, 2, 3), events(1, 2, 3, 4, 5), events(4, 5))
    assert [e["seq"] for e in await entries(server, f"{name}:s")] == ["1", "2", "3", "4", "5"]
    ttl = await server.pttl(f"longline:dedup:{name}:s:3")
    assert 0 < ttl <= 60_000


async def test_without_markers_a_redelivery_appends_again(server: Any, name: str) -> None:
    await delivered(server, proc(name, dedup_window=0), events(1, 2), events(1, 2))
    assert [e["seq"] for e in await entries(server, f"{name}:s")] == ["1", "2", "1", "2"]
    assert [k async for k in server.scan_iter(match=f"longline:dedup:{name}:*")] == []


async def test_a_failed_xadd_leaves_no_marker_behind(server: Any, name: str) -> None:
    await server.set(f"{name}:s", "not a stream")
    p = proc(name)
    with pytest.raises(ProcessorError, match="WRONGTYPE") as info:
        await delivered(server, p, events(1, 2))
    assert not info.value.permanent
    await server.delete(f"{name}:s")
    await delivered(server, p, events(1, 2))  # the retry, once the key is fixed
    assert [e["seq"] for e in await entries(server, f"{name}:s")] == ["1", "2"]


async def test_maxlen_trims_approximately(server: Any, name: str) -> None:
    await delivered(server, proc(name, maxlen=100), events(*range(1, 1001)))
    length = await server.xlen(f"{name}:s")
    assert 100 <= length < 1000
    last = await server.xrevrange(f"{name}:s", count=1)
    assert last[0][1][b"seq"] == b"1000"


async def test_dispatcher_delivers_every_stored_event_in_order(
    server: Any, name: str, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 25, stream="a")
    cfg = config(db, {**entry(name), "batch": 10, "retry": FAST_RETRY}, streams=("a",))
    try:
        await dispatch_until(cfg, store, caught_up(25))
    finally:
        await store.close()
    got = await entries(server, f"{name}:a")
    assert [int(e["seq"]) for e in got] == list(range(1, 26))
    assert [e["payload"] for e in got] == [f'{{"id":{i}}}' for i in range(1, 26)]
    assert {e["stream"] for e in got} == {"a"}


async def test_unreachable_server_is_a_retried_error_not_a_crash(tmp_path: Path) -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{closed_port()}/0"
    p = proc("lltest-down", url=url, timeout="1s")
    with pytest.raises(ProcessorError) as info:
        await p.deliver("s", events(1))
    assert not info.value.permanent and info.value.unavailable
    assert "redis connect failed" in str(info.value) and "hunter2secret" not in str(info.value)

    db = tmp_path / "down.db"
    store = await filled_store(db, 3)
    cfg = config(db, {**entry("lltest-down"), "url": url, "retry": FAST_RETRY})
    assert "hunter2secret" in cfg.secrets
    try:
        stats = await Dispatcher(cfg, store, poll=0.02).run(duration=0.5)
        lane = stats["lltest-down", "s"]
        assert (lane.cursor, lane.delivered, lane.dead) == (0, 0, 0)
        assert lane.last_error is not None and "redis connect failed" in lane.last_error
        assert await store.delivery_cursor("lltest-down", "s") == 0
    finally:
        await store.close()


async def test_a_lost_connection_fails_the_delivery_and_the_next_one_reconnects(
    server: Any, name: str
) -> None:
    proxy = TcpProxy(int(server.connection_pool.connection_kwargs.get("port", 6379)))
    await proxy.start()
    p = proc(name, url=f"redis://127.0.0.1:{proxy.port}/0", timeout="1s")
    try:
        await p.start()
        await p.deliver("s", events(1, 2))
        await proxy.cut()
        with pytest.raises(ProcessorError, match="redis XADD failed") as info:
            await p.deliver("s", events(3))
        assert not info.value.permanent and info.value.unavailable
        await proxy.restore()
        await p.deliver("s", events(3, 4))
    finally:
        await p.close()
        await proxy.cut()
    assert [e["seq"] for e in await entries(server, f"{name}:s")] == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"url": "http://127.0.0.1:6379"}, "url", "redis://"),
        ({"stream_key": "x:{nope}"}, "stream_key", '"{stream}"'),
        ({"stream_key": "x:{stream"}, "stream_key", "braces"),
        ({"maxlen": 0}, "maxlen", ">= 1"),
    ],
)
def test_config_errors_name_the_field(extra: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(Path("x.db"), {**entry("p"), **extra})
    (err,) = info.value.errors
    assert err.startswith(f"processors[0].{field}: ") and message in err


async def test_server_down_longer_than_max_attempts_loses_nothing(
    server: Any, name: str, tmp_path: Path
) -> None:
    """Redis cut off (connections dropped, then refused) while events keep arriving, for three
    times the attempts a batch has: once it is back, every event is in the Redis stream once,
    in order, and nothing was dead-lettered."""
    proxy = TcpProxy(int(server.connection_pool.connection_kwargs.get("port", 6379)))
    await proxy.start()
    db = tmp_path / "o.db"
    store = await filled_store(db, 10)
    retry = {**FAST_RETRY, "max_attempts": 2}
    e = {**entry(name), "url": f"redis://127.0.0.1:{proxy.port}/0", "timeout": "1s",
         "batch": 10, "retry": retry}  # fmt: skip
    try:
        d = await dispatch_through_outage(
            config(db, e), store, (name, "s"), proxy.cut, proxy.restore, before=10, during=25
        )
        assert await store.dead_letters() == []
    finally:
        await store.close()
        await proxy.cut()
    assert [int(x["seq"]) for x in await entries(server, f"{name}:s")] == list(range(1, 36))
    stats = d.stats[name, "s"]
    assert (stats.delivered, stats.dead) == (35, 0) and stats.retries >= 6
