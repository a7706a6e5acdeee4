"""A Slack Socket Mode emulator on loopback: ``apps.connections.open`` and the socket.

It follows Slack's published rules (https://api.slack.com/apis/socket-mode) strictly enough to
catch a client that breaks them, and injects the faults Slack is known for:

- ``POST /api/apps.connections.open`` needs ``Authorization: Bearer <app token>`` (an
  ``xapp-`` token): a wrong one is answered ``{"ok": false, "error": "invalid_auth"}``, a bot
  token ``not_allowed_token_type`` (HTTP 200, as Slack does); the URL it returns carries a
  single-use ticket, refused (HTTP 401) when used twice; ``rate_limited`` answers 429 with
  ``Retry-After``; more than ``max_connections`` (10) open connections are refused;
- every connection starts with ``hello``; each event goes, in an envelope with a fresh
  ``envelope_id``, to one ready connection; an envelope not acknowledged within
  ``ack_timeout`` is redelivered in a new envelope with ``retry_attempt`` + 1 and
  ``retry_reason: "timeout"``, up to ``max_retries`` times, after which Slack gives up (the
  event is counted as lost);
- ``slash_command(text)`` sends a ``slash_commands`` envelope (not Events API: no
  ``event_id``, no redelivery) to a ready connection; its acknowledgement is recorded in
  ``stats.other_acked``;
- faults: ``refresh(conn)`` sends ``disconnect`` (``refresh_requested`` or ``warning``) and
  closes that connection ``disconnect_grace`` seconds later (no more envelopes go to it
  meanwhile, unless ``deliver_while_leaving``); ``refresh_every`` does that to every
  connection after that many seconds;
  ``kill()`` resets connections without a close frame; ``disable_link()`` sends
  ``link_disabled`` and refuses every later open.

``on_ack(event_id)`` is called as each acknowledgement arrives, so a test can check that the
event is already committed in the client's store (acknowledge-after-commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from longline.testing.served import ServedEmulator

__all__ = ["APP_TOKEN", "SlackEmulator", "event_id", "event_payload"]

APP_TOKEN = "xapp-1-A0EMULATOR-1-emulatortoken"
APP_ID = "A0EMULATOR"


def event_id(n: int) -> str:
    """The Events API ``event_id`` of event ``n`` (the same in every redelivery)."""
    return f"Ev{n:010d}"


def event_payload(n: int) -> dict[str, object]:
    """The ``event_callback`` payload of event ``n`` (what the slack preset stores)."""
    return {
        "token": "verification-token",
        "team_id": "T0EMULATOR",
        "api_app_id": APP_ID,
        "event": {
            "type": "message",
            "channel": "C0EMULATOR",
            "user": "U0EMULATOR",
            "text": f"message {n}",
            "ts": f"{1_700_000_000 + n}.000100",
        },
        "type": "event_callback",
        "event_id": event_id(n),
        "event_time": 1_700_000_000 + n,
    }


@dataclass(eq=False)
class Link:
    """One open socket."""

    ws: web.WebSocketResponse
    request: web.Request
    opened: float
    ready: bool = False  # hello sent
    leaving: bool = False  # disconnect sent: no more envelopes
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Pending:
    """An envelope waiting for its acknowledgement."""

    n: int
    attempt: int
    sent: float
    link: Link


@dataclass
class SlackStats:
    """What the emulator saw."""

    opens: int = 0
    refused_opens: int = 0
    connections: int = 0
    envelopes: int = 0
    redeliveries: int = 0
    acks: int = 0
    unknown_acks: int = 0
    disconnects_sent: int = 0
    hellos: list[int] = field(default_factory=list)  # num_connections of each hello
    other_acked: list[str] = field(default_factory=list)  # envelope ids of slash commands
    lost: list[int] = field(default_factory=list)  # events Slack gave up on
    acked: set[int] = field(default_factory=set)
    ack_log: list[tuple[float, int]] = field(default_factory=list)  # (time, event number)


class SlackEmulator(ServedEmulator):
    """``async with SlackEmulator(total=100) as slack:`` then ``slack.api_url``."""

    def __init__(
        self,
        *,
        total: int = 0,
        rate: float = 200.0,
        app_token: str = APP_TOKEN,
        ack_timeout: float = 3.0,
        max_retries: int = 3,
        refresh_every: float | None = None,
        disconnect_grace: float = 2.0,
        rate_limited: int = 0,
        retry_after: int = 1,
        max_connections: int = 10,
        on_ack: Callable[[int], None] | None = None,
        oauth_client: tuple[str, str] | None = None,
        deliver_while_leaving: bool = False,
        token_ttl: float = 3600.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.total = total
        self.rate = rate
        self.app_token = app_token
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.refresh_every = refresh_every
        self.disconnect_grace = disconnect_grace
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.max_connections = max_connections
        self.on_ack = on_ack
        self.oauth_client = oauth_client
        self.deliver_while_leaving = deliver_while_leaving
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}  # OAuth2 access token -> expiry (time.time())
        self.tokens_issued = 0
        self.expired_refusals = 0
        self.host, self._port = host, port
        self.stats = SlackStats()
        self.links: set[Link] = set()
        self.disabled = False
        self._tickets: set[str] = set()
        self._queue: deque[tuple[int, int]] = deque()  # (event, attempt) to deliver
        self._pending: dict[str, Pending] = {}
        self._other: set[str] = set()  # envelope ids of slash commands not yet acknowledged
        self._next = 1
        self._rr = itertools.count()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._kick = asyncio.Event()
        self.port = 0

    @property
    def api_url(self) -> str:
        """The ``api_url`` to give the slack-socket-mode preset."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def done(self) -> bool:
        """Every event was acknowledged or given up on."""
        return len(self.stats.acked) + len(self.stats.lost) >= self.total

    # -- life cycle ---------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/apps.connections.open", self._open)
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_get("/link/", self._link)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._produce(), self._deliver(), self._redeliver()]

    # -- Web API ------------------------------------------------------------------------

    async def _open(self, request: web.Request) -> web.Response:
        self.stats.opens += 1
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if self.rate_limited > 0:
            self.rate_limited -= 1
            self.stats.refused_opens += 1
            headers = {"Retry-After": str(self.retry_after)}
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers=headers
            )
        if token in self.tokens:  # an OAuth2 token (the generic session's auth test)
            if self.tokens[token] <= time.time():
                self.expired_refusals += 1
                return web.json_response({"ok": False, "error": "token_expired"}, status=401)
            token = self.app_token
        error = None
        if not token:
            error = "not_authed"
        elif token.startswith("xoxb-") or token.startswith("xoxp-"):
            error = "not_allowed_token_type"
        elif token != self.app_token:
            error = "invalid_auth"
        elif self.disabled:
            error = "link_disabled"  # the emulator's word; the socket already said so
        elif len(self.links) >= self.max_connections:
            error = "too_many_websockets"
        if error is not None:
            self.stats.refused_opens += 1
            return web.json_response({"ok": False, "error": error})
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"
        return web.json_response({"ok": True, "url": url})

    async def _token(self, request: web.Request) -> web.Response:
        """OAuth2 client credentials (RFC 6749 4.4), for a provider that wants them: not
        Slack's, but it lets the generic ``auth`` block be tested against this emulator."""
        form = await request.post()
        creds = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
        if form.get("grant_type") != "client_credentials" or creds != self.oauth_client:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"oauth-{uuid.uuid4().hex}"
        self.tokens[token] = time.time() + self.token_ttl
        self.tokens_issued += 1
        ttl = int(self.token_ttl)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    def expire_tokens(self) -> None:
        """Every OAuth2 token issued so far expires now (the client learns it from a 401)."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    # -- the socket ---------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket\n")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        link = Link(ws, request, loop.time())
        self.links.add(link)
        self.stats.connections += 1
        try:
            hello = {
                "type": "hello",
                "num_connections": len(self.links),
                "debug_info": {
                    "host": "applink-emulator",
                    "build_number": 1,
                    "approximate_connection_time": int((self.refresh_every or 18060) * 1000),
                },
                "connection_info": {"app_id": APP_ID},
            }
            await ws.send_str(orjson.dumps(hello).decode())
            self.stats.hellos.append(len(self.links))
            link.ready = True
            self._kick.set()
            if self.refresh_every:
                link.tasks.add(asyncio.create_task(self._refresh_later(link)))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_client(msg.data)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.links.discard(link)
            for task in link.tasks:
                task.cancel()
        return ws

    def _on_client(self, text: str) -> None:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        envelope = doc.get("envelope_id") if isinstance(doc, dict) else None
        if envelope in self._other:
            self._other.discard(envelope)
            self.stats.acks += 1
            self.stats.other_acked.append(envelope)
            return
        pending = self._pending.pop(envelope, None) if isinstance(envelope, str) else None
        if pending is None:
            self.stats.unknown_acks += 1
            return
        self.stats.acks += 1
        self.stats.acked.add(pending.n)
        self.stats.ack_log.append((time.time(), pending.n))
        if self.on_ack is not None:
            self.on_ack(pending.n)

    # -- delivery -----------------------------------------------------------------------

    async def _produce(self) -> None:
        while self._next <= self.total:
            self._queue.append((self._next, 0))
            self._next += 1
            self._kick.set()
            await asyncio.sleep(1 / self.rate)

    def _ready_links(self) -> list[Link]:
        return [
            x
            for x in self.links
            if x.ready and not x.ws.closed and (self.deliver_while_leaving or not x.leaving)
        ]

    async def _deliver(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._queue:
                links = self._ready_links()
                if not links:
                    break  # Slack holds the events until a connection is ready
                n, attempt = self._queue.popleft()
                link = links[next(self._rr) % len(links)]
                await self._send_envelope(link, n, attempt)

    async def _send_envelope(self, link: Link, n: int, attempt: int) -> None:
        envelope_id = str(uuid.uuid4())
        doc = {
            "envelope_id": envelope_id,
            "payload": event_payload(n),
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": attempt,
            "retry_reason": "timeout" if attempt else "",
        }
        loop = asyncio.get_running_loop()
        self._pending[envelope_id] = Pending(n, attempt, loop.time(), link)
        self.stats.envelopes += 1
        if attempt:
            self.stats.redeliveries += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.ws.send_str(orjson.dumps(doc).decode())

    async def slash_command(self, text: str) -> tuple[str, dict[str, object]]:
        """Send a ``/longline text`` slash command envelope to a ready connection; return its
        ``envelope_id`` and payload."""
        links = self._ready_links()
        if not links:
            raise RuntimeError("no ready connection")
        envelope_id = str(uuid.uuid4())
        payload: dict[str, object] = {
            "token": "verification-token",
            "team_id": "T0EMULATOR",
            "api_app_id": APP_ID,
            "command": "/longline",
            "text": text,
            "user_id": "U0EMULATOR",
            "channel_id": "C0EMULATOR",
            "trigger_id": f"trigger-{envelope_id}",
        }
        doc = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": "slash_commands",
            "accepts_response_payload": True,
        }
        self._other.add(envelope_id)
        self.stats.envelopes += 1
        await links[next(self._rr) % len(links)].ws.send_str(orjson.dumps(doc).decode())
        return envelope_id, payload

    async def _redeliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(0.2, self.ack_timeout / 4))
            now = loop.time()
            late = [(k, p) for k, p in self._pending.items() if now - p.sent >= self.ack_timeout]
            for envelope_id, p in late:
                del self._pending[envelope_id]
                if p.n in self.stats.acked:
                    continue
                if p.attempt >= self.max_retries:
                    self.stats.lost.append(p.n)
                else:
                    self._queue.append((p.n, p.attempt + 1))
            if late:
                self._kick.set()

    # -- faults -------------------------------------------------------------------------

    async def refresh(self, link: Link, reason: str = "refresh_requested") -> None:
        """Send ``disconnect`` on ``link`` and close it ``disconnect_grace`` seconds later."""
        if link.leaving or link.ws.closed:
            return
        link.leaving = True
        self.stats.disconnects_sent += 1
        doc = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-emulator"}}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.ws.send_str(orjson.dumps(doc).decode())
        await asyncio.sleep(self.disconnect_grace)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.ws.close(code=1000)

    async def refresh_all(self, reason: str = "refresh_requested") -> None:
        """``refresh`` every open connection at once."""
        links = [x for x in self.links if not x.leaving]
        await asyncio.gather(*(self.refresh(x, reason) for x in links))

    def kill(self) -> None:
        """Reset every connection without a close frame (a dropped network)."""
        for link in list(self.links):
            self._abort(link)

    async def disable_link(self) -> None:
        """Socket Mode turned off for the app: ``link_disabled``, then refuse every open."""
        self.disabled = True
        for link in list(self.links):
            doc = {"type": "disconnect", "reason": "link_disabled"}
            with contextlib.suppress(ConnectionError, RuntimeError):
                await link.ws.send_str(orjson.dumps(doc).decode())
                await link.ws.close(code=1000)

    async def _refresh_later(self, link: Link) -> None:
        assert self.refresh_every is not None
        await asyncio.sleep(self.refresh_every)
        await self.refresh(link)

    @staticmethod
    def _abort(link: Link) -> None:
        transport = link.request.transport
        if transport is not None:
            transport.abort()
