"""``kind: nats`` against the NATS JetStream server on 127.0.0.1:4222 (``LONGLINE_TEST_NATS``)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from longline.config import ConfigError
from longline.core.model import StoredEvent
from longline.delivery.dispatcher import Dispatcher
from longline.processors.base import ProcessorError, event_dict
from longline.processors.nats import NatsProcessor, subject_filter
from longline.processors.registry import build_processor
from tests.processors.bus_helpers import TcpProxy, closed_port
from tests.processors.helpers import (
    FAST_RETRY,
    config,
    dispatch_through_outage,
    dispatch_until,
    event,
    filled_store,
)
from tests.services import service_missing

nats = pytest.importorskip("nats")
NATS_URL = os.environ.get("LONGLINE_TEST_NATS", "nats://127.0.0.1:4222")


class Bus:
    """A JetStream client of the test server and the names of this test alone."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        tag = uuid.uuid4().hex[:10]
        self.name = f"lltest-{tag}"  # processor name and subject prefix
        self.stream = f"LLTEST_{tag}"  # JetStream stream

    def entry(self, **extra: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "nats",
            "servers": [NATS_URL],
            "subject": f"{self.name}.{{stream}}",
            "stream_name": self.stream,
            "create_stream": True,
            **extra,
        }

    def proc(self, **extra: Any) -> NatsProcessor:
        built = build_processor(config(Path("n.db"), self.entry(**extra)).processors[0])
        assert isinstance(built, NatsProcessor)
        return built

    async def messages(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        """(subject, Nats-Msg-Id, body) of every message of the JetStream stream, in order."""
        info = await self.js.stream_info(self.stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(self.stream, seq)
            msg_id = (msg.headers or {}).get("Nats-Msg-Id")
            out.append((msg.subject, msg_id, orjson.loads(msg.data)))
        return out


@pytest.fixture
async def bus() -> AsyncIterator[Bus]:
    try:
        nc = await nats.connect(
            NATS_URL, connect_timeout=2, max_reconnect_attempts=1, reconnect_time_wait=0.1
        )
        await nc.jetstream().account_info()
    except Exception as exc:
        service_missing(
            f"NATS with JetStream at {NATS_URL} does not answer: {type(exc).__name__}: {exc}"
        )
    b = Bus(nc)
    try:
        yield b
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await b.js.delete_stream(b.stream)
        await nc.close()


def events(*seqs: int) -> list[StoredEvent]:
    """JSON payloads, except seq 2 (text, with an SSE type and a cursor)."""
    return [
        StoredEvent(s, f"k{s}", "c2", 2.5, "plain text", "tick")
        if s == 2
        else StoredEvent(s, f"k{s}", None, float(s), f'{{"id": {s}}}')
        for s in seqs
    ]


async def deliver(p: NatsProcessor, *batches: list[StoredEvent], stream: str = "s") -> None:
    await p.start()
    try:
        for batch in batches:
            await p.deliver(stream, batch)
    finally:
        await p.close()


async def test_publishes_each_event_with_its_dedup_id(bus: Bus) -> None:
    batch = events(1, 2, 3)
    await deliver(bus.proc(), batch)
    assert await bus.messages() == [
        (f"{bus.name}.s", f"s:{ev.seq}", event_dict("s", ev)) for ev in batch
    ]
    info = await bus.js.stream_info(bus.stream)
    assert info.config.subjects == [f"{bus.name}.*"]


async def test_jetstream_drops_redelivered_events(bus: Bus) -> None:
    await deliver(bus.proc(), events(1, 2, 3), events(1, 2, 3, 4, 5), events(5))
    assert [(m[1], m[2]["seq"]) for m in await bus.messages()] == [
        (f"s:{i}", i) for i in range(1, 6)
    ]


async def test_an_existing_stream_is_used_as_it_is(bus: Bus) -> None:
    await bus.js.add_stream(name=bus.stream, subjects=[f"{bus.name}.>"], max_msgs=1000)
    await deliver(bus.proc(), events(1))
    info = await bus.js.stream_info(bus.stream)
    assert (info.config.subjects, info.config.max_msgs, info.state.messages) == (
        [f"{bus.name}.>"],
        1000,
        1,
    )


async def test_dispatcher_delivers_two_streams_in_order(bus: Bus, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 30, stream="a")
    await store.append("b", [event(i) for i in range(1, 13)])
    cfg = config(db, bus.entry(batch=7, retry=FAST_RETRY), streams=("a", "b"))
    done = {"a": 30, "b": 12}
    try:
        await dispatch_until(
            cfg, store, lambda d: all(d.stats[bus.name, s].cursor == n for s, n in done.items())
        )
    finally:
        await store.close()
    got = await bus.messages()
    for stream, n in done.items():
        mine = [m for m in got if m[0] == f"{bus.name}.{stream}"]
        assert [m[2]["seq"] for m in mine] == list(range(1, n + 1))
        assert [m[1] for m in mine] == [f"{stream}:{i}" for i in range(1, n + 1)]
        assert [m[2]["payload"] for m in mine] == [{"id": i} for i in range(1, n + 1)]
    assert len(got) == 42


async def test_unreachable_server_is_a_retried_error_not_a_crash(tmp_path: Path) -> None:
    url = f"nats://user:hunter2secret@127.0.0.1:{closed_port()}"
    entry = {"name": "lltest-down", "kind": "nats", "servers": url, "timeout": "1s"}
    p = build_processor(config(Path("x.db"), entry).processors[0])
    with pytest.raises(ProcessorError) as info:
        await p.deliver("s", events(1))
    assert not info.value.permanent and info.value.unavailable
    assert "nats connect failed" in str(info.value) and "hunter2secret" not in str(info.value)

    db = tmp_path / "down.db"
    store = await filled_store(db, 3)
    cfg = config(db, {**entry, "retry": FAST_RETRY})
    assert "hunter2secret" in cfg.secrets
    try:
        stats = await Dispatcher(cfg, store, poll=0.02).run(duration=0.5)
        lane = stats["lltest-down", "s"]
        assert (lane.cursor, lane.delivered, lane.dead) == (0, 0, 0)
        assert lane.last_error is not None and "nats connect failed" in lane.last_error
    finally:
        await store.close()


async def test_a_subject_no_stream_listens_on_fails_without_ack(bus: Bus) -> None:
    p = bus.proc(create_stream=False, stream_name=None)
    with pytest.raises(ProcessorError, match="nats publish failed") as info:
        await deliver(p, events(1, 2))
    assert not info.value.permanent and info.value.unavailable  # it may be created later


async def test_an_event_over_max_payload_is_permanent(bus: Bus) -> None:
    big = StoredEvent(2, "k2", None, 2.0, '"' + "x" * 2_000_000 + '"')
    with pytest.raises(ProcessorError, match="publish of s seq 2 failed") as info:
        await deliver(bus.proc(), [*events(1), big, *events(3)])
    assert info.value.permanent  # the dispatcher isolates it and dead-letters only seq 2


async def test_a_lost_connection_fails_the_delivery_and_the_next_one_reconnects(
    bus: Bus,
) -> None:
    proxy = TcpProxy(urlsplit(NATS_URL).port or 4222)
    await proxy.start()
    p = bus.proc(servers=[f"nats://127.0.0.1:{proxy.port}"], timeout="1s")
    try:
        await p.start()
        await p.deliver("s", events(1, 2))
        await proxy.cut()
        with pytest.raises(ProcessorError) as info:
            await p.deliver("s", events(3))
        assert not info.value.permanent and info.value.unavailable
        await proxy.restore()
        await p.deliver("s", events(3, 4))
    finally:
        await p.close()
        await proxy.cut()
    assert [m[2]["seq"] for m in await bus.messages()] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"servers": ["http://x"]}, "servers", "nats://"),
        ({"subject": "a.b{stream}"}, "subject", "whole token"),
        ({"subject": "a.*"}, "subject", "wildcards"),
        ({"subject": "a.{other}"}, "subject", '"{stream}"'),
        ({"stream_name": "a.b"}, "stream_name", "'.'"),
    ],
)
def test_config_errors_name_the_field(extra: dict[str, Any], field: str, message: str) -> None:
    entry = {"name": "p", "kind": "nats", **extra}
    with pytest.raises(ConfigError) as info:
        config(Path("x.db"), entry)
    (err,) = info.value.errors
    assert err.startswith(f"processors[0].{field}: ") and message in err


def test_create_stream_needs_a_name_and_subject_filter() -> None:
    with pytest.raises(ConfigError) as info:
        config(Path("x.db"), {"name": "p", "kind": "nats", "create_stream": True})
    assert info.value.errors == ["processors[0]: create_stream: true needs stream_name"]
    assert subject_filter("x.{stream}.y") == "x.*.y"


async def test_server_down_longer_than_max_attempts_loses_nothing(
    bus: Bus, tmp_path: Path
) -> None:
    """NATS cut off (connections dropped, then refused) while events keep arriving, for three
    times the attempts a batch has: once it is back, JetStream holds every event once, in
    order, and nothing was dead-lettered."""
    proxy = TcpProxy(urlsplit(NATS_URL).port or 4222)
    await proxy.start()
    db = tmp_path / "o.db"
    store = await filled_store(db, 10)
    retry = {**FAST_RETRY, "max_attempts": 2}
    e = bus.entry(servers=[f"nats://127.0.0.1:{proxy.port}"], timeout="1s", batch=10,
                  retry=retry)  # fmt: skip
    try:
        d = await dispatch_through_outage(
            config(db, e), store, (bus.name, "s"), proxy.cut, proxy.restore, before=10, during=25
        )
        assert await store.dead_letters() == []
    finally:
        await store.close()
        await proxy.cut()
    assert [m[2]["seq"] for m in await bus.messages()] == list(range(1, 36))
    stats = d.stats[bus.name, "s"]
    assert (stats.delivered, stats.dead) == (35, 0) and stats.retries >= 6
