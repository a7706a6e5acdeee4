"""The operators' HTTP listener: metrics, health, status, the live page, reload.

One aiohttp server on the event loop that captures (``longline run --http``, worker mode, and
``longline dispatch``). With ``http.token`` set every endpoint but ``/healthz`` wants
``Authorization: Bearer TOKEN`` (or Basic auth with the token as password, which is how a
browser asks for it); the comparison takes constant time. Without a token the listener only
binds loopback (``ops/listen.py``) and, against DNS rebinding, answers only requests addressed
to a loopback name. The token is never logged: access logging is off, and the token only lives
in the listener's settings.

``GET /api/events/status`` is a Server-Sent Events stream of the page's rows: the whole table
first, then each second the rows that changed, computed once per tick for every client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from longline import __version__
from longline.config import ConfigError
from longline.core.address import is_loopback
from longline.ops.listen import Listen, ListenError
from longline.ops.live import OpsView, Reload, Sample
from longline.ops.metrics import CONTENT_TYPE, render
from longline.ops.status import collect_status

if TYPE_CHECKING:
    from longline.api import App
    from longline.engine.runner import Runner

__all__ = ["OpsServer", "app_service", "runner_service"]

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between the page's updates
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


@dataclass(slots=True)
class Frame:
    """One tick of the page: every stream's row and every lane's, by name."""

    n: int
    taken_at: float
    streams: dict[str, list[Any]]
    lanes: dict[str, list[Any]]


def _rows(sample: Sample, cursors: dict[str, str | None]) -> dict[str, list[Any]]:
    return {
        s.name: [
            s.state,
            s.reason,
            s.events,
            s.duplicates,
            s.quarantined,
            s.reconnects,
            s.last_event_at,
            cursors.get(s.name),
            s.connections,
            s.unready,
        ]
        for s in sample.streams
    }


def _lanes(sample: Sample) -> dict[str, list[Any]]:
    return {
        f"{ln.processor}/{ln.stream}": [
            ln.processor,
            ln.stream,
            ln.state,
            ln.delivered,
            ln.lag,
            ln.dead,
            ln.last_error,
        ]
        for ln in sample.lanes
    }


@dataclass
class _Ticker:
    """Builds a ``Frame`` each second while at least one page is connected."""

    view: OpsView
    period: float = TICK
    frame: Frame | None = None
    clients: int = 0
    closed: bool = False
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    _task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        self.clients += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="ops-page-ticker")
        try:
            yield
        finally:
            self.clients -= 1

    async def next_after(self, seen: int) -> Frame | None:
        """The first frame newer than ``seen``; None once the listener is stopping."""
        async with self._cond:
            await self._cond.wait_for(
                lambda: self.closed or (self.frame is not None and self.frame.n > seen)
            )
        return None if self.closed else self.frame

    async def _loop(self) -> None:
        n = self.frame.n if self.frame is not None else 0
        while self.clients > 0:
            try:
                sample = await self.view.sample()
                cursors = await self.view.cursors(sample)
            except Exception as e:  # the page shows the last frame; the next tick retries
                log.warning("status page: %s", e)
            else:
                n += 1
                async with self._cond:
                    self.frame = Frame(n, sample.taken_at, _rows(sample, cursors), _lanes(sample))
                    self._cond.notify_all()
            await asyncio.sleep(self.period)

    async def stop(self) -> None:
        """End every page's stream (their handlers return) and the ticking."""
        async with self._cond:
            self.closed = True
            self._cond.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class OpsServer:
    """The listener of one process; ``start`` binds (``ListenError`` when it cannot)."""

    def __init__(self, listen: Listen, view: OpsView) -> None:
        self.listen = listen
        self.view = view
        self.port = listen.port  # the bound port once started (``listen.port`` may be 0)
        self._token = listen.token.encode() if listen.token else None
        self._ticker = _Ticker(view)
        self._runner: web.AppRunner | None = None
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/events/status", self._events)
        app.router.add_post("/api/reload", self._reload)
        app.router.add_get("/", self._page)
        self.app = app

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.listen.host, self.listen.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            why = os.strerror(e.errno) if e.errno else str(e)
            raise ListenError(f"cannot listen on {self.listen}: {why}") from None
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        auth = "token required" if self._token else "no token"
        log.info("HTTP listener on %s:%d (%s)", self.listen.host, self.port, auth)

    async def stop(self) -> None:
        await self._ticker.stop()  # the pages' event streams end: cleanup need not wait
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- guard --------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/healthz":
            if self._token is not None:
                if not self._authorized(request.headers.get("Authorization", "")):
                    scheme = "Basic" if request.path == "/" else "Bearer"
                    return web.json_response(
                        {"error": "unauthorized: send Authorization: Bearer TOKEN"},
                        status=401,
                        headers={"WWW-Authenticate": f'{scheme} realm="longline"'},
                    )
            elif not _loopback_host(request.host):
                return web.json_response({"error": "not a loopback Host"}, status=403)
            if request.method == "POST" and not _same_origin(request):
                return web.json_response({"error": "cross-origin request refused"}, status=403)
        response = await handler(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    def _authorized(self, header: str) -> bool:
        assert self._token is not None
        scheme, _, value = header.strip().partition(" ")
        given = value.strip().encode()
        if scheme.lower() == "basic":  # a browser's login prompt: any user, the token as password
            try:
                given = base64.b64decode(given, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given, self._token)

    # -- endpoints ----------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        found = await self.view.readiness()
        return web.json_response(found, status=200 if found["ready"] else 503, dumps=_dumps)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        sample = await self.view.sample()  # on the loop; formatting in a thread
        body = await asyncio.to_thread(render, sample)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def _status(self, request: web.Request) -> web.StreamResponse:
        self.view.follow_reload()  # the streams of the running config, even unsampled
        try:
            data = await collect_status(self.view.config, self.view.store)
        except Exception as e:
            return web.json_response({"error": f"store: {e}"}, status=503)
        return web.json_response(data, dumps=_dumps)

    async def _reload(self, request: web.Request) -> web.StreamResponse:
        reload: Reload | None = self.view.reload
        if reload is None:
            return web.json_response(
                {"error": "live reload is not available in this process: restart it to apply "
                 "a changed config"},
                status=501,
            )  # fmt: skip
        try:
            detail = await reload()
        except ConfigError as e:
            return web.json_response({"reloaded": False, "errors": e.errors}, status=400)
        return web.json_response({"reloaded": True, "detail": detail})

    async def _page(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(body=_page_html(), content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = _PAGE_CSP
        return response

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        response.headers.update(_SECURITY_HEADERS)
        await response.prepare(request)
        try:
            await response.write(b"retry: 1000\n\n")
            async with self._ticker.watching():
                sent: Frame | None = None
                while (frame := await self._ticker.next_after(sent.n if sent else 0)) is not None:
                    await response.write(_message(frame, sent))
                    sent = frame
        except ConnectionResetError:  # the page went away
            pass
        return response


def _message(frame: Frame, sent: Frame | None) -> bytes:
    """The SSE message for ``frame``: everything (``full``) or what changed since ``sent``."""
    body: dict[str, Any] = {"t": frame.taken_at, "version": __version__, "lanes": frame.lanes}
    if sent is None:
        kind, body["streams"] = b"full", frame.streams
    else:
        kind = b"delta"
        old = sent.streams
        body["streams"] = {k: v for k, v in frame.streams.items() if old.get(k) != v}
        body["removed"] = [k for k in old if k not in frame.streams]
    return b"event: " + kind + b"\ndata: " + orjson.dumps(body) + b"\n\n"


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _loopback_host(host: str) -> bool:
    """The request's ``Host`` names a loopback address (a rebound DNS name does not)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return is_loopback(name.strip("[]"))


def _same_origin(request: web.Request) -> bool:
    """A browser's cross-site POST carries a foreign ``Origin``; tools send none."""
    origin = request.headers.get("Origin")
    return origin is None or origin in (f"http://{request.host}", f"https://{request.host}")


_PAGE: bytes | None = None


def _page_html() -> bytes:
    global _PAGE
    if _PAGE is None:
        _PAGE = resources.files("longline.ops").joinpath("page.html").read_bytes()
    return _PAGE


# -- wiring into `run` and `dispatch` --------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(view: OpsView, listen: Listen) -> AsyncIterator[OpsServer]:
    """Read the counters' start values, bind, serve until the block ends."""
    await view.start()
    try:
        server = OpsServer(listen, view)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
    finally:
        view.close()


def runner_service(
    listen: Listen, reload: Reload | None = None
) -> Callable[[Runner], contextlib.AbstractAsyncContextManager[OpsServer]]:
    """A ``Runner.services`` entry that serves ``listen`` while the runner's store is open."""

    def service(runner: Runner) -> contextlib.AbstractAsyncContextManager[OpsServer]:
        view = OpsView(runner.config, runner.store, runner=runner, reload=reload)
        return serving(view, listen)

    return service


def app_service(
    listen: Listen, reload: Reload | None = None
) -> Callable[[App], contextlib.AbstractAsyncContextManager[OpsServer]]:
    """An ``App.serve(services=...)`` entry: serves ``listen`` while the app's store is open,
    with its capture (``longline run``) and/or its processor lanes (``longline dispatch``)."""

    def service(app: App) -> contextlib.AbstractAsyncContextManager[OpsServer]:
        assert app.store is not None
        view = OpsView(
            app.config,
            app.store,
            runner=app.runner,
            dispatcher=app.dispatcher,
            reload=reload,
            config_of=lambda: app.config,  # a reload replaces both
            dispatcher_of=lambda: app.dispatcher,
        )
        return serving(view, listen)

    return service
