"""The generic session blocks (connect_url, control, reply, reconnect, payload_path, auth),
configured to hold Slack's conversation, against the Slack emulator."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from longline.config import Config, ConfigError, parse_config
from longline.core.secrets import registered_secrets
from longline.ops.logging import setup_logging
from longline.sessions.generic import GenericSession
from longline.stores import open_store
from longline.testing.provider import Provider
from longline.testing.slack import SlackEmulator
from tests.conftest import make_config
from tests.sessions.loopback import Loopback, OAuthSocket, send
from tests.sessions.test_slack import CommitCheck, expect, run_until, stored_slack


def generic_stream(slack: SlackEmulator, **session: Any) -> dict[str, Any]:
    return {
        "name": "slack",
        "transport": "ws",
        "key": "$.payload.event_id",
        "session": {
            "connect_url": {"url": f"{slack.api_url}/apps.connections.open"},
            "control": [{"when": {"path": "$.type", "equals": "hello"}}],
            "reconnect": [{"when": {"path": "$.type", "equals": "disconnect"}}],
            "reply": [
                {
                    "when": {"path": "$.envelope_id", "exists": True},
                    "send": '{"envelope_id": "{$.envelope_id}"}',
                }
            ],
            "payload_path": "$.payload",
            **session,
        },
    }


async def test_generic_blocks_with_oauth2_hold_slacks_conversation(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    check = CommitCheck(db, "slack")
    total = 500
    async with SlackEmulator(
        total=total,
        rate=100,
        refresh_every=0.4,
        disconnect_grace=1.0,
        on_ack=check,
        oauth_client=("cid", "csecret"),
    ) as slack:
        auth = {
            "kind": "oauth2-client-credentials",
            "token_url": f"http://127.0.0.1:{slack.port}/oauth2/token",
            "client_id": "cid",
            "client_secret": "csecret",
        }
        cfg = make_config(
            db, generic_stream(slack, auth=auth), writer={"batch_max": 500, "batch_window": "50ms"}
        )
        assert "csecret" in cfg.secrets

        expired = False

        def done(r: Any) -> bool:
            nonlocal expired
            if not expired and len(slack.stats.acked) > total // 2:
                slack.expire_tokens()  # the next open gets a 401: one refresh, then on
                expired = True
            return slack.done

        runner = await run_until(cfg, done)
        assert slack.stats.disconnects_sent >= 10
        assert runner.stats["slack"].rotations >= 10
        assert slack.expired_refusals >= 1
        assert slack.tokens_issued == 1 + slack.expired_refusals
        assert runner.stats["slack"].state == "stopped"
        assert (slack.stats.lost, slack.stats.redeliveries) == ([], 0)
    assert check.checked == total and check.early == []
    assert sorted(await stored_slack(cfg, "slack")) == [(k, p, None) for k, p, _ in expect(total)]


def test_session_options_are_checked_with_field_names() -> None:
    def errors(session: dict[str, Any], **stream: Any) -> list[str]:
        s = {"name": "s", "transport": "ws", "url": "wss://x.test/", "session": session}
        s.update(stream)
        s = {k: v for k, v in s.items() if v is not None}
        with pytest.raises(ConfigError) as info:
            parse_config({"streams": [s]}, env={})
        return info.value.errors

    assert errors({"reply": [{"when": {"path": "$.a"}, "send": "x"}]}) == [
        "streams[0].session.reply[0].when: set exactly one of equals or exists"
    ]
    assert errors({"control": [{"when": {"path": "$.a", "equals": 1}, "send": "x"}]}) == [
        "streams[0].session.control[0].send: unknown key; allowed: when"
    ]
    assert errors({"connect_url": {"url": "https://x.test/", "url_path": "url"}}) == [
        "streams[0].session.connect_url.url_path: invalid JSON path 'url': it must start with '$'"
    ]
    assert errors({"auth": {"kind": "basic"}}) == [
        "streams[0].session.auth.kind: must be 'oauth2-client-credentials'",
        "streams[0].session.auth.token_url: required",
        "streams[0].session.auth.client_id: required",
        "streams[0].session.auth.client_secret: required",
    ]
    assert errors({"preset": "slack-socket-mode"}, redundancy=11) == [
        "streams[0].session.app_token: required"
    ]
    assert errors({"preset": "slack-socket-mode", "app_token": "xapp-1"}, redundancy=11) == [
        "streams[0].redundancy: this provider allows at most 10 connections"
    ]
    assert errors({"preset": "slack-socket-mode", "app_token": "t"}, transport="sse") == [
        "streams[0].session: sessions drive a WebSocket: transport ws, not sse",
        "streams[0].url: must use http:// or https:// for transport sse",
    ]
    assert errors({"factory": "json:dumps"}) == [
        "streams[0].session.factory: json:dumps is not a longline.sessions.Session subclass"
    ]
    assert errors({"reply": []}, url=None) == ["streams[0].url: required"]


def test_secret_session_options_never_show() -> None:
    cfg = parse_config(
        {
            "streams": [
                {
                    "name": "s",
                    "transport": "ws",
                    "session": {"preset": "slack-socket-mode", "app_token": "${TOKEN}"},
                }
            ]
        },
        env={"TOKEN": "xapp-1-very-secret"},
    )
    assert "xapp-1-very-secret" in cfg.secrets
    assert "very-secret" not in str(cfg.redacted())


def test_longline_check_names_the_session_fields(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "streams:\n"
        "  - name: s\n    transport: ws\n"
        "    session: {preset: slack-socket-mode, app_tokn: xapp-1-abc}\n"
        "  - name: d\n    transport: ws\n"
        "    session: {preset: discord-gateway, token: t, intents: 1, bogus: 1}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "longline", "check", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.splitlines()[1:] == [
        "streams[0].session.app_token: required",
        "streams[0].session.app_tokn: unknown key (did you mean app_token?)",
        "streams[1].session.bogus: unknown key; allowed: api_url, intents, token",
    ]
    assert "xapp-1-abc" not in out.stderr + out.stdout


async def test_resume_query_applies_to_the_connect_url_answer(
    provider: Provider, tmp_path: Path
) -> None:
    """A stream that gets its URL from ``connect_url`` still resumes by ``resume.query``: the
    second run connects to the answered URL with ``since=<checkpoint>``, so the provider sends
    nothing again (without it, all 200 events a second time, dropped as duplicates)."""
    opened: list[str] = []

    async def open_connection(request: web.Request) -> web.Response:
        opened.append(request.method)
        return web.json_response({"ok": True, "url": provider.url("ws", "gen", total=200)})

    app = web.Application()
    app.router.add_post("/open", open_connection)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stream = {
        "name": "gen", "transport": "ws", "key": "$.id", "cursor": "$.id",
        "resume": {"query": "since"},
        "session": {"connect_url": {"url": f"http://127.0.0.1:{port}/open"}},
    }  # fmt: skip
    try:
        cfg = make_config(tmp_path / "r.db", stream)
        first = await run_until(cfg, lambda r: "gen" in r.stats and r.stats["gen"].events == 200)
        assert first.stats["gen"].events == 200
        second = await run_until(cfg, lambda r: "gen" in r.stats and r.stats["gen"].state == "live")
        assert second.stats["gen"].state == "stopped"
    finally:
        await runner.cleanup()
    assert opened == ["POST", "POST"]
    assert provider.stats["gen"].events_sent == 200  # the second connection resumed at 200
    assert second.stats["gen"].duplicates == 0


# --- auth: OAuth2 on the handshake -------------------------------------------------------


async def stored_keys(cfg: Config, stream: str) -> list[str]:
    store = open_store(cfg.store)
    await store.open()
    try:
        return [e.key for e in await store.read(stream, 0, 100_000)]
    finally:
        await store.close()


def numbered(total: int) -> list[str]:
    return sorted(str(n) for n in range(1, total + 1))


async def test_a_handshake_401_fetches_a_new_token_for_the_next_attempt(tmp_path: Path) -> None:
    """The token expires early at the provider (revoked, clock skew): the next handshake gets
    a 401, and the attempt after it presents a new token instead of the refused one."""
    total = 60
    async with OAuthSocket(total=total, per_connection=10) as server:
        cfg = make_config(
            tmp_path / "o.db", server.auth({"name": "o", "transport": "ws", "key": "$.id"})
        )
        expired = False

        def done(r: Any) -> bool:
            nonlocal expired
            if not expired and server.next > 20:
                server.expire_tokens()
                expired = True
            return server.done and r.stats["o"].events >= total

        runner = await run_until(cfg, done, timeout=20)
        assert runner.stats["o"].state == "stopped"
        assert server.expired_refusals == 1  # once; the cached token was then dropped
        assert server.tokens_issued == 2
        assert server.unknown_refusals == 0
    assert sorted(await stored_keys(cfg, "o")) == numbered(total)


async def test_a_token_is_refreshed_before_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens live just longer than the refresh margin (60 s + 1 s, scaled down to 1 s + 1 s
    so the test is short): each is replaced within its last margin, so no handshake ever
    presents an expired one, while connections come and go every ~0.1 s for 3 s."""
    monkeypatch.setattr(GenericSession, "token_margin", 1.0)
    total = 150
    async with OAuthSocket(total=total, per_connection=5, rate=50, token_ttl=2.0) as server:
        cfg = make_config(
            tmp_path / "o.db", server.auth({"name": "o", "transport": "ws", "key": "$.id"})
        )
        runner = await run_until(cfg, lambda r: server.done and r.stats["o"].events >= total, 20)
        assert runner.stats["o"].events == total
        assert server.opened("/ws") >= total // 5
        assert server.tokens_issued >= 2  # refreshed during the 3 s
        assert (server.expired_refusals, server.unknown_refusals) == (0, 0)
        # Redacted are the last two tokens, not every token of the run (months of refreshes).
        issued = list(server.tokens)  # in the order issued
        assert set(issued[-2:]) <= registered_secrets()
        assert not set(issued[:-2]) & registered_secrets()
    assert sorted(await stored_keys(cfg, "o")) == numbered(total)


async def test_the_access_token_never_shows_in_the_logs(tmp_path: Path) -> None:
    """The provider names the expired token in its 401 body, which the reconnect reason
    quotes: the token was registered as a secret when it was fetched, so it shows as ***."""
    out = io.StringIO()
    total = 40
    async with OAuthSocket(total=total, per_connection=10) as server:
        cfg = make_config(
            tmp_path / "o.db", server.auth({"name": "o", "transport": "ws", "key": "$.id"})
        )
        setup_logging("DEBUG", secrets=cfg.secrets, stream=out)
        expired = False

        def done(r: Any) -> bool:
            nonlocal expired
            if not expired and server.next > 10:
                server.expire_tokens()
                expired = True
            return server.done and r.stats["o"].events >= total

        await run_until(cfg, done, timeout=20)
    text = out.getvalue()
    assert server.expired_refusals >= 1 and server.tokens
    assert "token *** expired" in text  # the refusal was logged, redacted
    assert "csecret" not in text
    assert [token for token in server.tokens if token in text] == []


# --- reconnect to the URL a message names; control as liveness ----------------------------


async def test_a_reconnect_follows_the_url_in_the_message(tmp_path: Path) -> None:
    """``{"type": "move", "url": ...}``: the successor connects to that URL, the old
    connection keeps delivering until the successor is ready and only then is closed; every
    event is stored once."""
    total = 100

    async def old(ws: web.WebSocketResponse, request: web.Request) -> None:
        for n in range(1, 31):
            await send(ws, {"id": n})
        await send(ws, {"type": "move", "url": server.url("/b")})
        for n in range(31, 41):  # after the move, before the successor is up
            await send(ws, {"id": n})

    async def new(ws: web.WebSocketResponse, request: web.Request) -> None:
        for n in range(41, total + 1):
            await send(ws, {"id": n})

    server = Loopback({"/a": old, "/b": new})
    async with server:
        stream = {
            "name": "m",
            "transport": "ws",
            "url": server.url("/a"),
            "key": "$.id",
            "session": {
                "reconnect": [{"when": {"path": "$.type", "equals": "move"}, "url_path": "$.url"}]
            },
        }
        cfg = make_config(tmp_path / "m.db", stream)
        runner = await run_until(cfg, lambda r: "m" in r.stats and r.stats["m"].events >= total, 20)
        assert (server.opened("/a"), server.opened("/b")) == (1, 1)
        assert server.log.index(("open", "/b")) < server.log.index(("close", "/a"))
        assert runner.stats["m"].rotations == 1
        assert runner.stats["m"].reconnect_causes is None
        assert (runner.stats["m"].events, runner.stats["m"].duplicates) == (total, 0)
    assert sorted(await stored_keys(cfg, "m")) == numbered(total)


async def test_control_messages_alone_keep_a_stream_live(tmp_path: Path) -> None:
    """Keepalives every 0.1 s for 3 s and nothing else, with a 1 s ``stall_timeout``: they
    are protocol (not stored, not quarantined) but they are traffic, so no stall."""
    sent = 0

    async def keepalives(ws: web.WebSocketResponse, request: web.Request) -> None:
        nonlocal sent
        while sent < 30:
            await send(ws, {"type": "keepalive"})
            sent += 1
            await asyncio.sleep(0.1)

    server = Loopback({"/k": keepalives})
    async with server:
        stream = {
            "name": "k",
            "transport": "ws",
            "url": server.url("/k"),
            "key": "$.id",
            "stall_timeout": "1s",
            "session": {"control": [{"when": {"path": "$.type", "equals": "keepalive"}}]},
        }
        cfg = make_config(tmp_path / "k.db", stream)
        runner = await run_until(cfg, lambda r: sent >= 30, 20)
        assert sent == 30
        assert server.opened("/k") == 1
        stats = runner.stats["k"]
        assert stats.reconnect_causes is None
        assert (stats.events, stats.quarantined) == (0, 0)
    store = open_store(cfg.store)
    await store.open()
    try:
        assert await store.read("k", 0, 100) == []
        assert await store.read_quarantine("k") == []
    finally:
        await store.close()


async def test_a_reply_to_a_quarantined_message_waits_for_the_quarantine_write(
    tmp_path: Path,
) -> None:
    """A message without the payload is quarantined; its acknowledgement (a ``reply``) must
    not reach the provider before the quarantine row is written, or a crash in between
    loses it: the provider would not redeliver what it heard acknowledged. Commits linger
    300 ms here, so an early acknowledgement is caught every time."""
    db = tmp_path / "q.db"
    early: list[str] = []
    acked: list[str] = []

    def check(text: str) -> None:
        envelope = orjson.loads(text)["envelope_id"]
        acked.append(envelope)
        table, column = (
            ("quarantine", "CAST(raw AS TEXT)") if envelope == "bad" else ("events", "key")
        )
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            query = f"SELECT 1 FROM {table} WHERE stream = 'q' AND {column} LIKE ?"
            if con.execute(query, (f"%{envelope}%",)).fetchone() is None:
                early.append(envelope)
        finally:
            con.close()

    async def envelopes(ws: web.WebSocketResponse, request: web.Request) -> None:
        for n in range(1, 11):
            await send(ws, {"envelope_id": f"e{n}", "payload": {"n": n}})
            if n == 5:
                await send(ws, {"envelope_id": "bad", "no_payload": True})

    server = Loopback({"/q": envelopes})
    server.on_receive = check
    async with server:
        stream = {
            "name": "q",
            "transport": "ws",
            "url": server.url("/q"),
            "key": "$.envelope_id",
            "session": {
                "reply": [
                    {
                        "when": {"path": "$.envelope_id", "exists": True},
                        "send": '{"envelope_id": "{$.envelope_id}"}',
                    }
                ],
                "payload_path": "$.payload",
            },
        }
        cfg = make_config(db, stream, writer={"batch_max": 500, "batch_window": "3s"})
        runner = await run_until(cfg, lambda r: len(acked) >= 11, 20)
        assert (runner.stats["q"].events, runner.stats["q"].quarantined) == (10, 1)
    assert sorted(acked) == sorted(["bad", *(f"e{n}" for n in range(1, 11))])
    assert early == []
    assert sorted(await stored_keys(cfg, "q")) == sorted(f"e{n}" for n in range(1, 11))
