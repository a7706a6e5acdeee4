"""End-to-end capture against the real local provider over loopback into a real SQLite file.

Every test asserts the exact stored set: ids 1..N once each, in order, payloads byte for byte.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from longline.core.model import Totals
from longline.testing.provider import Provider, event_bytes
from tests.conftest import (
    capture_until,
    events_at_least,
    make_config,
    quarantined,
    stored,
    totals,
)

TRANSPORTS = ["sse", "ws", "lines"]
N = 600


def stream(provider: Provider, transport: str, feed: str, **params: Any) -> dict[str, Any]:
    """A resumable stream on ``feed`` keyed by the event id."""
    s: dict[str, Any] = {
        "name": f"{transport}-{feed}",
        "transport": transport,
        "key": "$.id",
        "url": provider.url(transport, feed, **params),
    }
    if transport != "sse":
        s["cursor"] = "$.id"
        s["resume"] = {"query": "since"}
    return s


def assert_exact(rows: list[tuple[int, bytes, str]], feed: str, n: int) -> None:
    assert [r[0] for r in rows] == list(range(1, n + 1))
    for ident, payload, key in rows:
        assert payload == event_bytes(feed, ident)
        assert key == str(ident)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_clean_feed_stored_exactly(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    cfg = make_config(tmp_path / "t.db", stream(provider, transport, "clean", total=N))
    runner = await capture_until(cfg, events_at_least(N))
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), "clean", N)
    assert runner.stats[name].state == "stopped"
    assert runner.stats[name].reconnects == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cut_mid_event_resumes_without_gap_or_double(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    cfg = make_config(tmp_path / "t.db", stream(provider, transport, "cut", total=N, cut_every=97))
    runner = await capture_until(cfg, events_at_least(N))
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), "cut", N)
    assert runner.stats[name].reconnects >= N // 97
    assert await quarantined(cfg, name) == []  # a half event is discarded, never stored


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_disconnects_resume(provider: Provider, tmp_path: Path, transport: str) -> None:
    cfg = make_config(
        tmp_path / "t.db", stream(provider, transport, "disc", total=N, disconnect_every=150)
    )
    runner = await capture_until(cfg, events_at_least(N))
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), "disc", N)
    assert runner.stats[name].reconnects >= 3


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_is_honoured(
    provider: Provider, tmp_path: Path, transport: str, status: int
) -> None:
    cfg = make_config(
        tmp_path / "t.db",
        stream(
            provider,
            transport,
            f"busy{status}",
            total=N,
            fail_first=2,
            fail_status=status,
            retry_after=1,
        ),
    )
    t0 = time.monotonic()
    runner = await capture_until(cfg, events_at_least(N))
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), f"busy{status}", N)
    assert runner.stats[name].reconnects == 2
    # The reconnects reached the store's totals, each with a commit of its own or an append.
    assert await totals(cfg, name) == Totals(events=N, reconnects=2)
    # Two refusals each asking for 1 s: the client may not come back sooner.
    assert time.monotonic() - t0 >= 2.0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stall_with_open_socket_is_detected(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    s = stream(provider, transport, "stall", total=N, stall_after=250, keepalive=0)
    s["stall_timeout"] = "500ms"
    s["ping_interval"] = "100ms"
    cfg = make_config(tmp_path / "t.db", s)
    runner = await capture_until(cfg, events_at_least(N))
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), "stall", N)
    assert runner.stats[name].reconnects >= 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_permanent_refusal_fails_one_stream_only(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    bad = stream(provider, transport, "denied", status=401)
    good = stream(provider, transport, "fine", total=N)
    cfg = make_config(tmp_path / "t.db", bad, good)
    bad_name, good_name = cfg.streams[0].name, cfg.streams[1].name
    runner = await capture_until(
        cfg, lambda r: r.stats[bad_name].state == "failed" and r.stats[good_name].events >= N
    )
    assert "401" in (runner.stats[bad_name].reason or "")
    assert provider.stats["denied"].refused == 3
    assert_exact(await stored(cfg, good_name), "fine", N)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_malformed_messages_quarantined_and_counted(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    cfg = make_config(
        tmp_path / "t.db", stream(provider, transport, "bad", total=N, malformed_every=100)
    )
    runner = await capture_until(
        cfg,
        lambda r: (
            r.stats[cfg.streams[0].name].events >= N
            and r.stats[cfg.streams[0].name].quarantined >= N // 100
        ),
    )
    name = cfg.streams[0].name
    assert_exact(await stored(cfg, name), "bad", N)
    reasons = await quarantined(cfg, name)
    assert len(reasons) == N // 100 == runner.stats[name].quarantined
    assert all(r.startswith("invalid JSON") for r in reasons)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_oversized_message_quarantined_stream_continues(
    provider: Provider, tmp_path: Path, transport: str
) -> None:
    s = stream(provider, transport, "big", total=300, oversize_every=100, oversize_bytes=300_000)
    s["max_message_size"] = "64KB"
    cfg = make_config(tmp_path / "t.db", s)
    name = cfg.streams[0].name
    await capture_until(
        cfg, lambda r: r.stats[name].events >= 300 and r.stats[name].quarantined >= 3
    )
    assert_exact(await stored(cfg, name), "big", 300)
    reasons = await quarantined(cfg, name)
    assert len(reasons) == 3
    assert all("exceeds max_message_size 64000" in r for r in reasons)


async def test_sse_last_event_id_persists_across_reconnect(tmp_path: Path) -> None:
    """WHATWG: the last event id survives a reconnect; an id-less event after it inherits it."""
    from aiohttp import web

    calls: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.headers.get("Last-Event-ID"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if len(calls) == 1:
            await resp.write(b'id: 7\ndata: {"n": 1}\n\n')
        else:
            await resp.write(b'data: {"n": 2}\n\n')  # no id line: keeps id 7
            await resp.write(b'id: 8\ndata: {"n": 3}\n\n')
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        cfg = make_config(
            tmp_path / "t.db",
            {"name": "s", "transport": "sse", "key": "hash", "url": f"http://127.0.0.1:{port}/"},
        )
        r = await capture_until(cfg, lambda r: r.stats["s"].events >= 3)
        assert r.stats["s"].quarantined == 0
    finally:
        await runner.cleanup()
    from longline.stores import open_store

    store = open_store(cfg.store)
    await store.open()
    try:
        evs = await store.read("s", 0, 10)
        assert [(e.payload, e.cursor) for e in evs] == [
            ('{"n": 1}', "7"),
            ('{"n": 2}', "7"),
            ('{"n": 3}', "8"),
        ]
        assert await store.checkpoint("s") == "8"
    finally:
        await store.close()
    assert calls[:2] == [None, "7"]
