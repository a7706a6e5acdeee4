"""A local event provider that misbehaves on request, for tests, benchmarks and the demo.

Real providers cut connections mid-event, stall with the socket open, refuse with 429/503 and
``Retry-After``, close after a lifetime and send garbage; longline must survive all of it. This
server does each of those on demand, chosen per connection by query parameters (see
``provider_feeds.FeedParams``), over SSE (``/sse/{feed}``), WebSocket (``/ws/{feed}``) and
newline-delimited JSON (``/lines/{feed}``). Event N of a feed always has the same bytes
(``event_bytes``), so what a client stored can be checked byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import WSMsgType, web

from longline.testing.provider_feeds import (
    PARAM_NAMES,
    TRANSPORTS,
    FeedParams,
    FeedState,
    FeedStats,
    ParamError,
    ProviderError,
    encode_param,
    event_bytes,
    parse_cursor,
    parse_params,
)
from longline.testing.provider_session import Session, start_id
from longline.testing.provider_sinks import HttpSink, WsSink

__all__ = ["FeedStats", "Provider", "ProviderError", "event_bytes"]

SUBSCRIBE_WINDOW = 1.0  # a subscribe message later than this after connecting is ignored
_CONTENT_TYPES = {"sse": "text/event-stream", "lines": "application/x-ndjson"}


def _subscribe_cursor(text: str) -> tuple[bool, int | None]:
    """``(is_subscribe, since)`` for a client text message; ``since`` None means no cursor."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None
    if not isinstance(msg, dict) or msg.get("op") != "subscribe":
        return False, None
    return True, parse_cursor(msg.get("since"))


async def _settle(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` if needed and wait for it, swallowing what a vanished client causes."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
        await task


class _Refusal(Exception):
    """Carries the error response that a refused connection attempt gets instead of a stream."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class Provider:
    """The local provider: ``await start()``, build URLs with ``url()``, ``await stop()``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context  # serve https:// and wss:// (see longline.testing.tls)
        self._feeds: dict[str, FeedState] = {}
        self._handlers: set[asyncio.Task[object]] = set()
        self._runner: web.AppRunner | None = None
        self._bound_port = 0

    async def __aenter__(self) -> Provider:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The listening port (the real one when constructed with ``port=0``)."""
        if not self._bound_port:
            raise ProviderError("the provider is not started")
        return self._bound_port

    @property
    def open_connections(self) -> int:
        """Streams being served right now (stalled ones included)."""
        return len(self._handlers)

    @property
    def stats(self) -> dict[str, FeedStats]:
        """Live counters per feed name that has been asked for at least once."""
        return {name: feed.stats for name, feed in self._feeds.items()}

    def url(self, transport: str, feed: str = "default", **params: object) -> str:
        """The URL of ``feed`` over ``transport`` with fault parameters, e.g. ``total=100``."""
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        unknown = sorted(set(params) - PARAM_NAMES)
        if unknown:
            raise ValueError(f"unknown provider parameters: {', '.join(unknown)}")
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = ("ws" if transport == "ws" else "http") + ("s" if self._ssl else "")
        query = urlencode({k: encode_param(v) for k, v in params.items() if v is not None})
        return f"{scheme}://{host}:{self.port}/{transport}/{feed}" + (f"?{query}" if query else "")

    async def start(self) -> None:
        """Listen; raises ``ProviderError`` when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/sse/{feed}", self._sse)
        app.router.add_get("/lines/{feed}", self._lines)
        app.router.add_get("/ws/{feed}", self._ws)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl).start()
        except OSError as exc:
            await runner.cleanup()
            raise ProviderError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and end every open connection (within about a second)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=0.5)
        await runner.cleanup()

    def feed(self, name: str) -> FeedState:
        """The state of feed ``name`` (created on first use)."""
        state = self._feeds.get(name)
        if state is None:
            state = self._feeds[name] = FeedState(name)
        return state

    def _admit(self, request: web.Request, transport: str) -> tuple[FeedParams, FeedState]:
        """Parse the request and apply refusals; raises ``_Refusal`` with the answer instead."""
        try:
            params = parse_params(request.query, transport)
        except ParamError as exc:
            raise _Refusal(web.Response(status=400, text=str(exc))) from None
        feed = self.feed(request.match_info["feed"])
        feed.attempts += 1
        status = params.status
        if status is None and feed.attempts <= params.fail_first:
            status = params.fail_status
        if status is not None:
            feed.stats.refused += 1
            headers = {"Retry-After": params.retry_after} if params.retry_after else None
            raise _Refusal(web.Response(status=status, headers=headers, text="refused\n"))
        feed.stats.connections += 1
        return params, feed

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        return await self._http(request, "sse")

    async def _lines(self, request: web.Request) -> web.StreamResponse:
        return await self._http(request, "lines")

    async def _http(self, request: web.Request, transport: str) -> web.StreamResponse:
        try:
            params, feed = self._admit(request, transport)
        except _Refusal as refusal:
            return refusal.response
        resp = web.StreamResponse(
            headers={"Content-Type": _CONTENT_TYPES[transport], "Cache-Control": "no-cache"}
        )
        resp.enable_chunked_encoding()
        hint = params.since  # SSE: a usable Last-Event-ID header wins over ?since=
        if transport == "sse":
            header = parse_cursor(request.headers.get("Last-Event-ID", "").strip())
            hint = header if header is not None else hint
        with self._tracked():
            try:
                await resp.prepare(request)
                sink = HttpSink(request, resp, transport == "sse")
                loop = asyncio.get_running_loop()
                session = Session(sink, feed, params, start_id(params, feed, hint, loop.time()))
                try:
                    async with asyncio.timeout(params.lifetime or None):
                        await session.run()
                except TimeoutError:
                    await sink.close(params.abrupt, going_away=True)
            except ConnectionError:
                pass  # the client went away: nothing to report
        return resp

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        try:
            params, feed = self._admit(request, "ws")
        except _Refusal as refusal:
            return refusal.response
        ws = web.WebSocketResponse(compress=params.deflate, timeout=1.0, max_msg_size=1 << 20)
        with self._tracked():
            try:
                await ws.prepare(request)
                sink = WsSink(request, ws, params.binary)
                async with asyncio.timeout(params.lifetime or None):
                    await self._ws_session(ws, sink, params, feed)
            except TimeoutError:
                with contextlib.suppress(ConnectionError):
                    await sink.close(params.abrupt, going_away=True)
            except ConnectionError:
                pass
        return ws

    async def _ws_session(
        self, ws: web.WebSocketResponse, sink: WsSink, params: FeedParams, feed: FeedState
    ) -> None:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        first: asyncio.Future[int | None] = loop.create_future()
        session: Session | None = None

        async def read() -> None:
            async for msg in ws:  # ends on close; aiohttp answers pings while we iterate
                if msg.type is not WSMsgType.TEXT:
                    continue
                waiting = params.subscribe and not first.done()
                if not waiting and loop.time() - opened > SUBSCRIBE_WINDOW:
                    continue
                is_sub, since = _subscribe_cursor(msg.data)
                if not is_sub:
                    continue
                if waiting:
                    first.set_result(since)
                elif session is not None and since is not None and params.resumable:
                    session.reposition(since + 1)

        reader = sink.reader = asyncio.create_task(read())
        try:
            hint = params.since
            if params.subscribe:  # send nothing at all until the client subscribes
                waits: list[asyncio.Future[Any]] = [first, reader]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not first.done():
                    return
                hint = first.result() if first.result() is not None else hint
            session = Session(sink, feed, params, start_id(params, feed, hint, loop.time()))
            writer = asyncio.create_task(session.run())
            try:
                await asyncio.wait([writer, reader], return_when=asyncio.FIRST_COMPLETED)
                if not writer.done() and (reader.cancelled() or sink.closing):
                    await asyncio.wait([writer])  # stalled (until cancelled) or closing itself
                if writer.done():
                    writer.result()
            finally:
                await _settle(writer)
        finally:
            await _settle(reader)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Remember the running handler so that ``stop()`` can cancel it."""
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._handlers.discard(task)
