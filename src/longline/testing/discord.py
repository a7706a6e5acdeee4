"""A Discord Gateway emulator on loopback: ``/gateway/bot`` and the Gateway.

It follows Discord's published rules (https://discord.com/developers/docs/events/gateway)
strictly enough to catch a client that breaks them:

- ``GET /api/v10/gateway/bot`` needs ``Authorization: Bot <token>`` (else 401);
- every connection starts with Hello (op 10, ``heartbeat_interval``); a client that sends no
  Heartbeat within ``interval * 1.5`` of the last one (or of Hello) is closed with 4009
  (session timed out); every Heartbeat is ACKed (op 11) unless the connection is a zombie;
  a Heartbeat must carry the last sequence the client received: one whose ``d`` is older
  than what this connection had sent before its previous ACK (the client has read that
  ACK, so it has read everything sent before it), or newer than any sent, is counted in
  ``stale_heartbeats`` (an exact "equals the last sent" check would race with dispatches in
  flight); ``request_heartbeat()`` sends op 1 and counts the Heartbeats that answer it;
- Identify (op 2) with a wrong token is closed with 4004, with privileged intents not
  allowed with 4014; it starts a session: ``READY`` with ``session_id`` and
  ``resume_gateway_url``, a path of its own (``/resume-gateway``) so the emulator can tell
  which URL a Resume came in on (``stats.paths``, ``stats.resumes_elsewhere``);
- Resume (op 6) of a known session with a sequence it can replay from gets the missed
  dispatches, then ``RESUMED``; an unknown session or a sequence ahead of the session gets
  Invalid Session (op 9, ``d: false``); a resumed session leaves its previous connection,
  which is closed;
- each event is a ``MESSAGE_CREATE`` dispatch with the session's next ``s``, sent to the
  session's connection, or kept for a resume while it has none;
- faults: ``reconnect_every`` / ``reconnect(link)`` send Reconnect (op 7) and close that
  connection ``reconnect_grace`` later; ``zombie()`` stops ACKing heartbeats on the open
  connections; ``invalidate(resumable)`` sends op 9; ``kill()`` resets connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from longline.testing.served import ServedEmulator

__all__ = ["TOKEN", "DiscordEmulator", "message_event"]

TOKEN = "emulator.bot.token"
PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15)  # GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT


def message_event(n: int) -> dict[str, Any]:
    """The ``d`` of the ``MESSAGE_CREATE`` of event ``n``."""
    return {"id": str(1_000_000 + n), "channel_id": "42", "content": f"message {n}", "n": n}


@dataclass(eq=False)
class GatewaySession:
    """A Gateway session: its sequence and what it sent (for replay)."""

    id: str
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    link: Link | None = None
    delivered: set[int] = field(default_factory=set)  # event numbers sent on a connection


@dataclass(eq=False)
class Link:
    """One Gateway connection."""

    ws: web.WebSocketResponse
    request: web.Request
    session: GatewaySession | None = None
    zombie: bool = False
    last_beat: float = 0.0
    sent_seq: int | None = None  # the last sequence sent on this connection
    acked_seq: int | None = None  # sent_seq when the last ACK was sent
    beat_asked: bool = False  # op 1 sent, no Heartbeat since
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class DiscordStats:
    """What the emulator saw."""

    connections: int = 0
    identifies: int = 0
    resumes: int = 0
    replayed: int = 0
    invalid_sessions: int = 0
    reconnects_sent: int = 0
    heartbeats: int = 0
    late_heartbeats: int = 0
    stale_heartbeats: int = 0  # d older than this connection's last ACK covered, or unsent
    heartbeat_requests: int = 0
    requested_heartbeats: int = 0  # Heartbeats that came while an op 1 was unanswered
    paths: dict[str, int] = field(default_factory=dict)  # connections per URL path
    resumes_elsewhere: int = 0  # Resumes not on the resume_gateway_url
    closes: list[int] = field(default_factory=list)
    refused_gateway_bot: int = 0


class DiscordEmulator(ServedEmulator):
    """``async with DiscordEmulator(total=100) as discord:`` then ``discord.api_url``."""

    def __init__(
        self,
        *,
        total: int = 0,
        rate: float = 100.0,
        heartbeat_interval: int = 1000,
        reconnect_every: float | None = None,
        reconnect_grace: float = 2.0,
        token: str = TOKEN,
        allowed_intents: int = ~PRIVILEGED,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.total, self.rate = total, rate
        self.heartbeat_interval = heartbeat_interval
        self.reconnect_every, self.reconnect_grace = reconnect_every, reconnect_grace
        self.token, self.allowed_intents = token, allowed_intents
        self.host, self._port = host, port
        self.port = 0
        self.stats = DiscordStats()
        self.sessions: dict[str, GatewaySession] = {}
        self.links: set[Link] = set()
        self.produced = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def api_url(self) -> str:
        """The preset's ``api_url``."""
        return f"http://{self.host}:{self.port}/api/v10"

    @property
    def done(self) -> bool:
        """Every event was produced and sent on some connection."""
        delivered = set().union(*(s.delivered for s in self.sessions.values()))
        return self.produced >= self.total and len(delivered) >= self.total

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v10/gateway/bot", self._gateway_bot)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/resume-gateway", self._gateway)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._produce()]

    # -- HTTP -----------------------------------------------------------------------------

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            self.stats.refused_gateway_bot += 1
            return web.json_response({"message": "401: Unauthorized", "code": 0}, status=401)
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        url = f"ws://{self.host}:{self.port}/gateway"
        return web.json_response({"url": url, "shards": 1, "session_start_limit": limit})

    # -- the Gateway ----------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("v") != "10" or request.query.get("encoding") != "json":
            return web.Response(status=400, text="v=10&encoding=json expected\n")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        link = Link(ws, request, last_beat=loop.time())
        self.links.add(link)
        self.stats.connections += 1
        self.stats.paths[request.path] = self.stats.paths.get(request.path, 0) + 1
        try:
            await self._send(link, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval}})
            link.tasks.add(asyncio.create_task(self._watch_heartbeats(link)))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._on_client(link, orjson.loads(msg.data))
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.links.discard(link)
            if link.session is not None and link.session.link is link:
                link.session.link = None
            for task in link.tasks:
                task.cancel()
            if ws.close_code is not None:
                self.stats.closes.append(ws.close_code)
        return ws

    async def _send(self, link: Link, doc: dict[str, Any]) -> None:
        await link.ws.send_str(orjson.dumps(doc).decode())
        if isinstance(doc.get("s"), int):
            link.sent_seq = doc["s"]

    async def _close(self, link: Link, code: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.ws.close(code=code)

    async def _on_client(self, link: Link, doc: dict[str, Any]) -> None:
        op, d = doc.get("op"), doc.get("d")
        if op == 1:
            loop = asyncio.get_running_loop()
            self.stats.heartbeats += 1
            link.last_beat = loop.time()
            if link.beat_asked:
                link.beat_asked = False
                self.stats.requested_heartbeats += 1
            newest = max((s.seq for s in self.sessions.values()), default=0)
            floor = link.acked_seq
            if (floor is not None and not (isinstance(d, int) and d >= floor)) or (
                isinstance(d, int) and d > newest
            ):
                self.stats.stale_heartbeats += 1
            if not link.zombie:
                link.acked_seq = link.sent_seq
                await self._send(link, {"op": 11})
        elif op == 2:
            self.stats.identifies += 1
            if not isinstance(d, dict) or d.get("token") != self.token:
                await self._close(link, 4004)
                return
            intents = d.get("intents")
            if not isinstance(intents, int) or intents & ~self.allowed_intents:
                await self._close(link, 4014)
                return
            session = GatewaySession(uuid.uuid4().hex)
            self.sessions[session.id] = session
            await self._attach(link, session)
            ready = {
                "v": 10,
                "session_id": session.id,
                "resume_gateway_url": f"ws://{self.host}:{self.port}/resume-gateway",
                "user": {"id": "1", "username": "emulator"},
                "guilds": [],
            }
            await self._dispatch(session, "READY", ready)
        elif op == 6:
            self.stats.resumes += 1
            if link.request.path != "/resume-gateway":
                self.stats.resumes_elsewhere += 1
            if not isinstance(d, dict) or d.get("token") != self.token:
                await self._close(link, 4004)
                return
            known = self.sessions.get(str(d.get("session_id")))
            seq = d.get("seq")
            if known is None or not isinstance(seq, int) or seq > known.seq:
                self.stats.invalid_sessions += 1
                await self._send(link, {"op": 9, "d": False})
                return
            await self._attach(link, known)
            for entry in known.log[seq:]:
                self.stats.replayed += 1
                await self._send(link, entry)
                self._delivered(known, entry)
            await self._send(link, {"op": 0, "t": "RESUMED", "s": None, "d": {}})
        if op in (2, 6) and self.reconnect_every and link.session is not None:
            link.tasks.add(asyncio.create_task(self._reconnect_later(link)))

    async def _attach(self, link: Link, session: GatewaySession) -> None:
        old, session.link, link.session = session.link, link, session
        if old is not None and old is not link:
            await self._close(old, 4000)  # the session moved to a new connection

    async def _dispatch(self, session: GatewaySession, kind: str, data: dict[str, Any]) -> None:
        session.seq += 1
        entry = {"op": 0, "t": kind, "s": session.seq, "d": data}
        session.log.append(entry)
        link = session.link
        if link is not None and not link.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(link, entry)
                self._delivered(session, entry)

    @staticmethod
    def _delivered(session: GatewaySession, entry: dict[str, Any]) -> None:
        if entry["t"] == "MESSAGE_CREATE":
            session.delivered.add(entry["d"]["n"])

    async def _watch_heartbeats(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        limit = self.heartbeat_interval / 1000 * 1.5
        while not link.ws.closed:
            await asyncio.sleep(limit / 4)
            if loop.time() - link.last_beat > limit:
                self.stats.late_heartbeats += 1
                await self._close(link, 4009)
                return

    async def _produce(self) -> None:
        while self.produced < self.total:
            if not self.sessions:
                await asyncio.sleep(0.01)
                continue
            self.produced += 1
            for session in list(self.sessions.values()):
                await self._dispatch(session, "MESSAGE_CREATE", message_event(self.produced))
            await asyncio.sleep(1 / self.rate)

    # -- faults ---------------------------------------------------------------------------

    async def reconnect(self, link: Link) -> None:
        """Reconnect (op 7); the connection closes ``reconnect_grace`` later."""
        if link.ws.closed:
            return
        self.stats.reconnects_sent += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._send(link, {"op": 7, "d": None})
        await asyncio.sleep(self.reconnect_grace)
        await self._close(link, 4000)

    async def _reconnect_later(self, link: Link) -> None:
        assert self.reconnect_every is not None
        await asyncio.sleep(self.reconnect_every)
        await self.reconnect(link)

    def zombie(self) -> None:
        """Stop ACKing heartbeats on every open connection."""
        for link in self.links:
            link.zombie = True

    async def request_heartbeat(self) -> None:
        """Heartbeat request (op 1) on every open connection: the client must answer at once."""
        for link in list(self.links):
            self.stats.heartbeat_requests += 1
            link.beat_asked = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(link, {"op": 1, "d": None})

    async def invalidate(self, resumable: bool) -> None:
        """Invalid Session (op 9) on every open connection."""
        for link in list(self.links):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(link, {"op": 9, "d": resumable})

    def kill(self) -> None:
        """Reset every connection without a close frame."""
        for link in list(self.links):
            transport = link.request.transport
            if transport is not None:
                transport.abort()
