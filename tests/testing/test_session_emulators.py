"""The session emulators refuse what the real services refuse (a client that breaks a rule
must fail against them, not pass)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from longline.testing.discord import TOKEN as DISCORD_TOKEN
from longline.testing.discord import DiscordEmulator
from longline.testing.slack import APP_TOKEN, SlackEmulator, event_id
from longline.testing.twitch import CLIENT_ID, TOKEN, TwitchEmulator


async def slack_open(
    http: aiohttp.ClientSession, slack: SlackEmulator, token: str
) -> tuple[int, dict[str, object]]:
    url = f"{slack.api_url}/apps.connections.open"
    async with http.post(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def test_slack_refuses_bad_tokens_and_used_tickets_and_redelivers() -> None:
    async with (
        SlackEmulator(total=1, rate=100, ack_timeout=0.5) as slack,
        aiohttp.ClientSession() as http,
    ):
        assert await slack_open(http, slack, "xapp-1-wrong") == (
            200,
            {"ok": False, "error": "invalid_auth"},
        )
        assert await slack_open(http, slack, "xoxb-bot-token") == (
            200,
            {"ok": False, "error": "not_allowed_token_type"},
        )
        status, answer = await slack_open(http, slack, APP_TOKEN)
        assert status == 200 and answer["ok"] is True
        url = str(answer["url"])
        async with http.ws_connect(url) as ws:
            hello = orjson.loads((await ws.receive()).data)
            assert hello["type"] == "hello"
            first = orjson.loads((await ws.receive()).data)
            assert (first["type"], first["retry_attempt"]) == ("events_api", 0)
            again = orjson.loads((await asyncio.wait_for(ws.receive(), 5)).data)  # no ack
            assert again["payload"]["event_id"] == event_id(1)
            assert (again["retry_attempt"], again["retry_reason"]) == (1, "timeout")
            assert again["envelope_id"] != first["envelope_id"]
            await ws.send_str(orjson.dumps({"envelope_id": first["envelope_id"]}).decode())
            await ws.send_str(orjson.dumps({"envelope_id": again["envelope_id"]}).decode())
            await asyncio.sleep(0.1)
        assert slack.stats.acked == {1}
        assert slack.stats.unknown_acks == 1  # the first envelope had expired
        try:
            async with http.ws_connect(url):
                raise AssertionError("a used ticket was accepted")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 401


async def test_twitch_refuses_unknown_sessions_unused_connections_and_client_traffic() -> None:
    async with TwitchEmulator(subscribe_deadline=0.5) as tw, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TOKEN}", "Client-Id": CLIENT_ID}
        body = {
            "type": "channel.chat.message",
            "version": "1",
            "condition": {},
            "transport": {"method": "websocket", "session_id": "nope"},
        }
        async with http.post(
            f"{tw.api_url}/eventsub/subscriptions", json=body, headers=headers
        ) as r:
            assert r.status == 400
        async with http.ws_connect(tw.ws_url) as ws:  # never subscribes
            welcome = orjson.loads((await ws.receive()).data)
            assert welcome["metadata"]["message_type"] == "session_welcome"
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4003
        async with http.ws_connect(tw.ws_url) as ws:
            welcome = orjson.loads((await ws.receive()).data)
            sid = welcome["payload"]["session"]["id"]
            body["transport"] = {"method": "websocket", "session_id": sid}
            url = f"{tw.api_url}/eventsub/subscriptions"
            async with http.post(url, json=body, headers={"Client-Id": CLIENT_ID}) as r:
                assert r.status == 401
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 202
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 409
            await ws.send_str("hello")  # clients may send nothing but pongs
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4001
        try:
            async with http.ws_connect(tw.ws_url + "?keepalive_timeout_seconds=5"):
                raise AssertionError("keepalive_timeout_seconds=5 was accepted")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 400


async def test_discord_refuses_late_heartbeats_bad_tokens_and_a_resume_ahead() -> None:
    async with DiscordEmulator(heartbeat_interval=200) as dc, aiohttp.ClientSession() as http:
        gw = f"ws://127.0.0.1:{dc.port}/gateway?v=10&encoding=json"
        async with http.ws_connect(gw) as ws:  # never heartbeats
            hello = orjson.loads((await ws.receive()).data)
            assert hello == {"op": 10, "d": {"heartbeat_interval": 200}}
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4009
        async with http.ws_connect(gw) as ws:
            await ws.receive()
            await ws.send_str(orjson.dumps({"op": 2, "d": {"token": "bad", "intents": 1}}).decode())
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4004
        async with http.ws_connect(gw) as ws:
            await ws.receive()
            ident = {"op": 2, "d": {"token": DISCORD_TOKEN, "intents": 1}}
            await ws.send_str(orjson.dumps(ident).decode())
            ready = orjson.loads((await ws.receive()).data)
            assert (ready["t"], ready["s"]) == ("READY", 1)
            sid = ready["d"]["session_id"]
        async with http.ws_connect(gw) as ws:
            await ws.receive()
            resume = {"op": 6, "d": {"token": DISCORD_TOKEN, "session_id": sid, "seq": 99}}
            await ws.send_str(orjson.dumps(resume).decode())
            assert orjson.loads((await ws.receive()).data) == {"op": 9, "d": False}
        async with http.get(f"{dc.api_url}/gateway/bot") as r:
            assert r.status == 401
