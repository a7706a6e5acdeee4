"""``kind: webhook`` against a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from longline.core.model import StoredEvent
from longline.delivery.redeliver import replay
from longline.processors.base import ProcessorError
from longline.processors.registry import build_processor
from longline.processors.webhook import WebhookProcessor, sign
from tests.processors.helpers import (
    FAST_RETRY,
    Hook,
    Reply,
    caught_up,
    config,
    dispatch_through_outage,
    dispatch_until,
    filled_store,
)

SECRET = "hook-secret-123"


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook(secret=SECRET)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def entry(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "kind": "webhook", "url": url, "secret": SECRET, **extra}


def proc(url: str, **extra: Any) -> WebhookProcessor:
    built = build_processor(config(Path("w.db"), entry(url, **extra)).processors[0])
    assert isinstance(built, WebhookProcessor)
    return built


async def events(tmp_path: Path, n: int) -> list[StoredEvent]:
    store = await filled_store(tmp_path / "e.db", n)
    try:
        return await store.read("s", 0, n)
    finally:
        await store.close()


async def test_posts_signed_json_batch(hook: Hook, tmp_path: Path) -> None:
    p = proc(hook.url, headers={"X-Team": "data"})
    await p.start()
    try:
        await p.deliver("s", await events(tmp_path, 2))
    finally:
        await p.close()
    (r,) = hook.requests
    assert r.body == {
        "stream": "s",
        "events": [
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
        ],
    }
    assert hook.signature_ok(r)
    assert r.headers["X-Longline-Signature"] == sign(SECRET, r.raw)
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Team"] == "data"


@pytest.mark.parametrize(
    ("status", "permanent", "unavailable"),
    [(400, True, False), (401, True, False), (404, True, False), (408, False, False),
     (429, False, True), (500, False, False), (503, False, True), (302, True, False)],
)  # fmt: skip
async def test_status_decides_retry_or_dead_letter(
    hook: Hook, tmp_path: Path, status: int, permanent: bool, unavailable: bool
) -> None:
    hook.script = [Reply(status, headers={"Location": "/elsewhere"} if status == 302 else {})]
    p = proc(hook.url)
    try:
        with pytest.raises(ProcessorError) as info:
            await p.deliver("s", await events(tmp_path, 1))
    finally:
        await p.close()
    assert str(info.value) == f"webhook answered HTTP {status}: hook says no"
    assert (info.value.permanent, info.value.retry_after) == (permanent, None)
    assert info.value.unavailable is unavailable  # 429/503: wait for the sink, never give up
    assert len(hook.requests) == 1  # a redirect is not followed


async def test_429_carries_retry_after(hook: Hook, tmp_path: Path) -> None:
    hook.script = [Reply(429, headers={"Retry-After": "7"})]
    p = proc(hook.url)
    try:
        with pytest.raises(ProcessorError) as info:
            await p.deliver("s", await events(tmp_path, 1))
    finally:
        await p.close()
    assert (info.value.permanent, info.value.retry_after) == (False, 7.0)


async def test_an_echoed_token_crossing_the_cut_is_redacted_whole(
    hook: Hook, tmp_path: Path
) -> None:
    """The error keeps the first 200 characters of the body; a token that starts before the
    cut and ends after it must not leave its start behind (a piece no redactor recognises)."""
    token = "tok-5e6f7a8b9c-webhook"
    hook.script = [Reply(401, text="x" * 190 + token + " expired" + "y" * 300)]
    p = proc(hook.url, headers={"Authorization": f"Bearer {token}"})
    try:
        with pytest.raises(ProcessorError) as info:
            await p.deliver("s", await events(tmp_path, 1))
    finally:
        await p.close()
    assert str(info.value) == "webhook answered HTTP 401: " + "x" * 190 + "***"


async def test_network_error_is_retried_and_hides_the_password(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    p = proc(f"http://user:pw-xyz-secret@127.0.0.1:{port}/hook")
    try:
        with pytest.raises(ProcessorError) as info:
            await p.deliver("s", await events(tmp_path, 1))
    finally:
        await p.close()
    assert str(info.value).startswith("webhook request failed: ClientConnectorError")
    assert "pw-xyz-secret" not in str(info.value)
    assert not info.value.permanent and info.value.unavailable


# -- through the dispatcher: exact delivered lists ---------------------------------------------


async def dispatched(tmp_path: Path, n: int, hook_entry: dict[str, Any]) -> Any:
    db = tmp_path / "d.db"
    store = await filled_store(db, n)
    try:
        d = await dispatch_until(config(db, hook_entry), store, caught_up(n))
        return d.stats["hook", "s"], await store.dead_letters()
    finally:
        await store.close()


async def test_500_then_200_delivers_everything_in_order(hook: Hook, tmp_path: Path) -> None:
    hook.script = [Reply(200), Reply(500), Reply(502)]
    stats, dead = await dispatched(tmp_path, 40, entry(hook.url, batch=10, retry=FAST_RETRY))
    assert hook.delivered == list(range(1, 41))
    assert [r.status for r in hook.requests] == [200, 500, 502, 200, 200, 200]
    assert [r.seqs[0] for r in hook.requests] == [1, 11, 11, 11, 21, 31]
    assert all(hook.signature_ok(r) for r in hook.requests)
    assert (stats.delivered, stats.dead, stats.retries, dead) == (40, 0, 2, [])


async def test_hanging_past_timeout_then_ok(hook: Hook, tmp_path: Path) -> None:
    hook.script = [Reply(200, delay=5.0)]
    e = entry(hook.url, batch=10, timeout="200ms", retry=FAST_RETRY)
    stats, dead = await dispatched(tmp_path, 20, e)
    assert hook.delivered == list(range(1, 21))
    assert [r.status for r in hook.requests] == [None, 200, 200]
    assert stats.retries == 1 and dead == []


async def test_400_dead_letters_only_the_poison_event_and_continues(
    hook: Hook, tmp_path: Path
) -> None:
    hook.poison = {13, 27}
    stats, dead = await dispatched(tmp_path, 40, entry(hook.url, batch=10, retry=FAST_RETRY))
    assert hook.delivered == [i for i in range(1, 41) if i not in (13, 27)]
    assert [(d.processor, d.stream, d.seq, d.key, d.attempts) for d in dead] == [
        ("hook", "s", 13, "k13", 1),
        ("hook", "s", 27, "k27", 1),
    ]
    assert dead[0].error == "webhook answered HTTP 400: hook says no"
    assert (stats.delivered, stats.dead, stats.retries) == (38, 2, 0)


async def test_500_for_good_dead_letters_the_batch_after_max_attempts(
    hook: Hook, tmp_path: Path
) -> None:
    hook.script = [Reply(500)] * 3  # the receiver is up and fails this batch: it may be the cause
    retry = {**FAST_RETRY, "max_attempts": 3}
    stats, dead = await dispatched(tmp_path, 15, entry(hook.url, batch=10, retry=retry))
    assert hook.delivered == list(range(11, 16))
    assert [(d.seq, d.attempts) for d in dead] == [(i, 3) for i in range(1, 11)]
    assert (stats.delivered, stats.dead, stats.retries) == (5, 10, 2)


async def test_503_for_longer_than_max_attempts_keeps_the_batch_until_it_is_back(
    hook: Hook, tmp_path: Path
) -> None:
    hook.script = [Reply(503)] * 7  # "unavailable": not this batch's fault
    retry = {**FAST_RETRY, "max_attempts": 2}
    stats, dead = await dispatched(tmp_path, 15, entry(hook.url, batch=10, retry=retry))
    assert hook.delivered == list(range(1, 16))
    assert [r.status for r in hook.requests] == [503] * 7 + [200, 200]
    assert (stats.delivered, stats.dead, stats.retries, dead) == (15, 0, 7, [])


async def test_receiver_down_longer_than_max_attempts_loses_nothing(
    hook: Hook, tmp_path: Path
) -> None:
    """The receiver's server is shut (connections refused) while events keep arriving, for
    three times the attempts a batch has: once it is back, everything arrives, in order, and
    nothing was dead-lettered (before, the backlog went to the dead letters batch by batch)."""
    db = tmp_path / "o.db"
    store = await filled_store(db, 10)
    retry = {**FAST_RETRY, "max_attempts": 2}
    try:
        d = await dispatch_through_outage(
            config(db, entry(hook.url, batch=10, retry=retry)), store, ("hook", "s"),
            hook.stop, hook.start, before=10, during=25,
        )  # fmt: skip
        assert await store.dead_letters() == []
    finally:
        await store.close()
    assert hook.delivered == list(range(1, 36))
    stats = d.stats["hook", "s"]
    assert (stats.delivered, stats.dead) == (35, 0) and stats.retries >= 6
    assert stats.last_error is not None and "ClientConnectorError" in stats.last_error


async def test_replay_with_the_receiver_down_gives_up_after_its_attempts(
    tmp_path: Path,
) -> None:
    """Only the dispatcher's lanes wait for a sink; a one-off replay reports the failure."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "r.db"
    store = await filled_store(db, 3)
    retry = {**FAST_RETRY, "max_attempts": 2}
    cfg = config(db, entry(f"http://127.0.0.1:{port}/hook", retry=retry))
    try:
        done = await asyncio.wait_for(replay(cfg, store, "hook", "s", 1), 10)
    finally:
        await store.close()
    assert done.delivered == 0
    assert [seq for _, _, seq, _ in done.failed] == [1, 2, 3]
