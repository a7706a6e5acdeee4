"""A Twitch EventSub WebSocket emulator on loopback: the socket and the Helix subscriptions.

It follows Twitch's published rules
(https://dev.twitch.tv/docs/eventsub/handling-websocket-events/) strictly enough to catch a
client that breaks them:

- ``GET /ws`` (``keepalive_timeout_seconds`` 10..600, else 400) starts with
  ``session_welcome``; a session without a subscription ``subscribe_deadline`` (10 s) after its
  welcome is closed with 4003 (connection unused); any client message or ping closes with
  4001 (client sent inbound traffic); silence longer than the keepalive period gets a
  ``session_keepalive``;
- ``POST /helix/eventsub/subscriptions`` needs ``Authorization: Bearer <token>`` and
  ``Client-Id`` (else 401), a ``websocket`` transport whose ``session_id`` is connected (else
  400) and not yet subscribed to the same type and condition (else 409); answers 202;
- each event goes to every session subscribed to its type, as a ``notification`` with a new
  ``message_id``; ``duplicate_every`` resends some with the same ``message_id``, as Twitch may;
- faults: ``reconnect(link)`` sends ``session_reconnect`` with a ``reconnect_url``; a connection
  there gets a welcome for the same session (subscriptions carried over) and the old one is
  closed once it is sent (4004 if nobody came within 30 s); ``reconnect_every`` does that on
  a timer; ``kill()`` resets connections; ``revoke()`` sends ``revocation``.

Twitch does not replay: events produced while no session is subscribed are not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from longline.testing.served import ServedEmulator

__all__ = ["CLIENT_ID", "TOKEN", "TwitchEmulator", "notification_event"]

CLIENT_ID = "emulatorclientid"
TOKEN = "emulatoruseraccesstoken"
EVENT_TYPE = "channel.chat.message"
RECONNECT_GRACE = 30.0


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def notification_event(n: int) -> dict[str, Any]:
    """The ``event`` of event ``n``."""
    return {
        "broadcaster_user_id": "1971641",
        "chatter_user_id": "4145994",
        "message_id": f"chat-{n}",
        "message": {"text": f"message {n}"},
        "n": n,
    }


@dataclass(eq=False)
class Session:
    """A Twitch WebSocket session (survives a reconnect)."""

    id: str
    keepalive: int
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> sub
    link: Link | None = None
    sent: list[int] = field(default_factory=list)  # event numbers notified on this session


@dataclass(eq=False)
class Link:
    """One socket, serving ``session``."""

    ws: web.WebSocketResponse
    request: web.Request
    session: Session
    last_tx: float = 0.0
    leaving: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class TwitchStats:
    """What the emulator saw."""

    connections: int = 0
    welcomes: int = 0
    subscriptions_created: int = 0
    subscribe_refusals: list[int] = field(default_factory=list)  # statuses
    reconnects_sent: int = 0
    reconnects_followed: int = 0
    notifications: int = 0
    duplicates_sent: int = 0
    inbound_violations: int = 0
    unused_closes: int = 0
    delivered: set[int] = field(default_factory=set)  # event numbers sent at least once
    undelivered: list[int] = field(default_factory=list)  # produced with no subscriber


class TwitchEmulator(ServedEmulator):
    """``async with TwitchEmulator(total=100) as twitch:`` then ``twitch.ws_url``."""

    def __init__(
        self,
        *,
        total: int = 0,
        rate: float = 100.0,
        reconnect_every: float | None = None,
        duplicate_every: int = 0,
        subscribe_deadline: float = 10.0,
        client_id: str = CLIENT_ID,
        token: str = TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.total = total
        self.rate = rate
        self.reconnect_every = reconnect_every
        self.duplicate_every = duplicate_every
        self.subscribe_deadline = subscribe_deadline
        self.client_id, self.token = client_id, token
        self.host, self._port = host, port
        self.port = 0
        self.stats = TwitchStats()
        self.sessions: dict[str, Session] = {}
        self.links: set[Link] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.produced = 0

    @property
    def ws_url(self) -> str:
        """The preset's ``url``."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def api_url(self) -> str:
        """The preset's ``api_url``."""
        return f"http://{self.host}:{self.port}/helix"

    @property
    def done(self) -> bool:
        """Every event was produced."""
        return self.produced >= self.total

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/helix/eventsub/subscriptions", self._subscribe)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._produce()]

    # -- Helix ----------------------------------------------------------------------------

    async def _subscribe(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.token}" or request.headers.get("Client-Id") != self.client_id:
            return self._refuse(401, "Unauthorized", "invalid access token")
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(400, "Bad Request", "invalid JSON body")
        transport = body.get("transport") if isinstance(body, dict) else None
        if not isinstance(transport, dict) or transport.get("method") != "websocket":
            return self._refuse(400, "Bad Request", "transport.method must be websocket")
        session = self.sessions.get(str(transport.get("session_id")))
        if session is None or session.link is None or session.link.ws.closed:
            msg = "websocket transport session does not exist or has already disconnected"
            return self._refuse(400, "Bad Request", msg)
        kind, condition = body.get("type"), body.get("condition")
        for sub in session.subscriptions.values():
            if (sub["type"], sub["condition"]) == (kind, condition):
                return self._refuse(409, "Conflict", "subscription already exists")
        sub = {
            "id": str(uuid.uuid4()),
            "status": "enabled",
            "type": kind,
            "version": body.get("version"),
            "condition": condition,
            "created_at": _now(),
            "transport": {"method": "websocket", "session_id": session.id},
            "cost": 0,
        }
        session.subscriptions[sub["id"]] = sub
        self.stats.subscriptions_created += 1
        answer = {"data": [sub], "total": 1, "total_cost": 0, "max_total_cost": 10}
        return web.json_response(answer, status=202)

    def _refuse(self, status: int, error: str, message: str) -> web.Response:
        self.stats.subscribe_refusals.append(status)
        body = {"error": error, "status": status, "message": message}
        return web.json_response(body, status=status)

    # -- the socket -----------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        old: Session | None = None
        follow = request.query.get("reconnect")
        if follow is not None:
            old = self.sessions.get(follow)
            if old is None:
                return web.Response(status=400, text="invalid reconnect\n")
        raw = request.query.get("keepalive_timeout_seconds", "10")
        if not raw.isdigit() or not 10 <= int(raw) <= 600:
            return web.Response(status=400, text="keepalive_timeout_seconds must be 10-600\n")
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        session = old or Session(str(uuid.uuid4()), int(raw))
        self.sessions[session.id] = session
        previous = session.link
        link = Link(ws, request, session)
        self.links.add(link)
        self.stats.connections += 1
        try:
            await self._send(link, "session_welcome", {"session": self._session_doc(session)})
            self.stats.welcomes += 1
            session.link = link  # deliveries move to the new connection with its welcome
            if previous is not None:
                self.stats.reconnects_followed += 1
                previous.leaving = True
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await previous.ws.close(code=1000)
            link.tasks.add(asyncio.create_task(self._keepalive(link)))
            if old is None:
                link.tasks.add(asyncio.create_task(self._unused(link)))
            if self.reconnect_every:
                link.tasks.add(asyncio.create_task(self._reconnect_later(link)))
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.PING):
                    self.stats.inbound_violations += 1
                    await ws.close(code=4001, message=b"client sent inbound traffic")
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.links.discard(link)
            if session.link is link:
                session.link = None
            for task in link.tasks:
                task.cancel()
        return ws

    def _session_doc(self, session: Session, reconnect_url: str | None = None) -> dict[str, Any]:
        return {
            "id": session.id,
            "status": "reconnecting" if reconnect_url else "connected",
            "connected_at": _now(),
            "keepalive_timeout_seconds": None if reconnect_url else session.keepalive,
            "reconnect_url": reconnect_url,
        }

    async def _send(
        self, link: Link, kind: str, payload: Mapping[str, Any], extra: Mapping[str, Any] = {}
    ) -> dict[str, Any]:
        msg = {
            "metadata": {
                "message_id": str(uuid.uuid4()),
                "message_type": kind,
                "message_timestamp": _now(),
                **extra,
            },
            "payload": payload,
        }
        await link.ws.send_str(orjson.dumps(msg).decode())
        link.last_tx = asyncio.get_running_loop().time()
        return msg

    async def _keepalive(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        period = link.session.keepalive
        while not link.ws.closed:
            wait = link.last_tx + period - loop.time()
            if wait <= 0:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self._send(link, "session_keepalive", {})
                continue
            await asyncio.sleep(wait)

    async def _unused(self, link: Link) -> None:
        await asyncio.sleep(self.subscribe_deadline)
        if not link.session.subscriptions and not link.ws.closed:
            self.stats.unused_closes += 1
            await link.ws.close(code=4003, message=b"connection unused")

    # -- events ---------------------------------------------------------------------------

    async def _produce(self) -> None:
        while self.produced < self.total:
            if not any(s.subscriptions for s in self.sessions.values()):
                await asyncio.sleep(0.01)  # nobody subscribed yet: wait for the first one
                if self.produced == 0:
                    continue
            self.produced += 1
            await self._publish(self.produced)
            await asyncio.sleep(1 / self.rate)

    async def _publish(self, n: int) -> None:
        sent = False
        for session in list(self.sessions.values()):
            link = session.link
            if link is None or link.ws.closed:
                continue
            for sub in list(session.subscriptions.values()):
                if sub["type"] != EVENT_TYPE or sub["status"] != "enabled":
                    continue
                extra = {"subscription_type": sub["type"], "subscription_version": sub["version"]}
                payload = {"subscription": sub, "event": notification_event(n)}
                try:
                    msg = await self._send(link, "notification", payload, extra)
                    self.stats.notifications += 1
                    session.sent.append(n)
                    sent = True
                    if self.duplicate_every and n % self.duplicate_every == 0:
                        await link.ws.send_str(orjson.dumps(msg).decode())  # same message_id
                        self.stats.duplicates_sent += 1
                except (ConnectionError, RuntimeError):
                    continue
        if sent:
            self.stats.delivered.add(n)
        else:
            self.stats.undelivered.append(n)

    # -- faults ---------------------------------------------------------------------------

    async def reconnect(self, link: Link) -> None:
        """``session_reconnect``; the old connection closes when the new one is welcomed, or
        with 4004 after 30 s."""
        if link.leaving or link.ws.closed:
            return
        link.leaving = True
        self.stats.reconnects_sent += 1
        url = f"ws://{self.host}:{self.port}/ws?reconnect={link.session.id}"
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._send(
                link, "session_reconnect", {"session": self._session_doc(link.session, url)}
            )
        await asyncio.sleep(RECONNECT_GRACE)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.ws.close(code=4004, message=b"reconnect grace time expired")

    async def _reconnect_later(self, link: Link) -> None:
        assert self.reconnect_every is not None
        await asyncio.sleep(self.reconnect_every)
        await self.reconnect(link)

    def kill(self) -> None:
        """Reset every connection without a close frame."""
        for link in list(self.links):
            transport = link.request.transport
            if transport is not None:
                transport.abort()

    async def revoke(self, status: str = "authorization_revoked") -> None:
        """Revoke every subscription (``revocation`` on its session's connection)."""
        for session in self.sessions.values():
            for sub in session.subscriptions.values():
                sub["status"] = status
                if session.link is not None:
                    extra = {"subscription_type": sub["type"], "subscription_version": "1"}
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self._send(session.link, "revocation", {"subscription": sub}, extra)
