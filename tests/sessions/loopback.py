"""Small loopback servers for the generic session's tests: what a provider does on a
WebSocket (OAuth2 bearer checks, a ``move`` to another URL, keepalives only), with a log of
what happened in which order."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from longline.testing.served import ServedEmulator

Script = Callable[[web.WebSocketResponse, web.Request], Awaitable[None]]


class Loopback(ServedEmulator):
    """WebSocket paths, each served by a ``script(ws, request)``; ``log`` records
    ``("open" | "close", path)`` in order, ``received`` what clients sent."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.host, self._port, self.port = "127.0.0.1", 0, 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.log: list[tuple[str, str]] = []
        self.received: list[tuple[str, str]] = []  # (path, text)
        self.requests: list[web.Request] = []
        self.on_receive: Callable[[str], None] | None = None  # called as each text arrives

    def url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"

    def opened(self, path: str) -> int:
        return self.log.count(("open", path))

    def routes(self, app: web.Application) -> None:
        for path in self.scripts:
            app.router.add_get(path, self._serve)

    async def refuse(self, request: web.Request) -> web.StreamResponse | None:
        """A refusal of the handshake, or None to accept it."""
        return None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        refusal = await self.refuse(request)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        path = request.path
        self.log.append(("open", path))
        self.requests.append(request)
        reader = asyncio.create_task(self._read(ws, path))
        try:
            await self.scripts[path](ws, request)
            await reader  # until the client closes
        except (ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.requests.remove(request)
            self.log.append(("close", path))
        return ws

    async def _read(self, ws: web.WebSocketResponse, path: str) -> None:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                self.received.append((path, msg.data))
                if self.on_receive is not None:
                    self.on_receive(msg.data)

    def kill(self) -> None:
        for request in list(self.requests):
            if request.transport is not None:
                request.transport.abort()


async def send(ws: web.WebSocketResponse, doc: dict[str, Any]) -> None:
    await ws.send_str(orjson.dumps(doc).decode())


class OAuthSocket(Loopback):
    """A provider that wants an OAuth2 client-credentials token (RFC 6749 4.4) on the
    WebSocket handshake: ``POST /oauth2/token`` issues tokens valid ``token_ttl`` seconds;
    ``/ws`` refuses a missing or unknown token (401) and an expired one (401, the body
    naming it, as some providers do), else sends ``per_connection`` events ``{"id": n}``
    (``rate`` a second) from one shared count, then closes."""

    def __init__(
        self,
        *,
        total: int,
        per_connection: int,
        rate: float = 200.0,
        token_ttl: float = 3600.0,
        client: tuple[str, str] = ("cid", "csecret"),
    ) -> None:
        super().__init__({"/ws": self._events})
        self.total, self.per_connection, self.rate = total, per_connection, rate
        self.token_ttl, self.client = token_ttl, client
        self.tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self.tokens_issued = 0
        self.expired_refusals = 0
        self.unknown_refusals = 0
        self.next = 1

    @property
    def done(self) -> bool:
        return self.next > self.total

    def auth(self, stream: dict[str, Any]) -> dict[str, Any]:
        """``stream`` with this server's URL and an ``auth`` block for it."""
        session = {
            "auth": {
                "kind": "oauth2-client-credentials",
                "token_url": f"http://{self.host}:{self.port}/oauth2/token",
                "client_id": self.client[0],
                "client_secret": self.client[1],
            }
        }
        return {**stream, "url": self.url("/ws"), "session": session}

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/oauth2/token", self._token)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        creds = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
        if form.get("grant_type") != "client_credentials" or creds != self.client:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"oauth-{uuid.uuid4().hex}"
        self.tokens[token] = time.time() + self.token_ttl
        self.tokens_issued += 1
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}
        return web.json_response(answer)

    def expire_tokens(self) -> None:
        """Every token issued so far expires now."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    async def refuse(self, request: web.Request) -> web.StreamResponse | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if token not in self.tokens:
            self.unknown_refusals += 1
            return web.Response(status=401, text="unknown token\n")
        if self.tokens[token] <= time.time():
            self.expired_refusals += 1
            return web.Response(status=401, text=f"token {token} expired\n")
        return None

    async def _events(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        for _ in range(self.per_connection):
            if self.done:
                break
            await send(ws, {"id": self.next})
            self.next += 1
            await asyncio.sleep(1 / self.rate)
        await ws.close(code=1000)
