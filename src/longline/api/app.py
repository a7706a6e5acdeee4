"""``longline.App``: capture and delivery composed in one object, for Python programs.

An App holds a store URL, streams (the options of a YAML stream, validated by the same models)
and processors (YAML kinds from ``from_config``, plus Python callables registered with
``@app.processor``). ``serve()`` runs them in the current event loop: a capture ``Runner`` and,
beside it on the same store, a delivery ``Dispatcher``. The two never know about each other:
this module is where they are put together, and ``longline run`` / ``longline dispatch`` are
built on it.

While serving, ``add_stream`` starts a stream and ``stop_stream`` stops one (its connections
close, what it received is committed with its checkpoint). Lanes (processor, stream) are fixed
per dispatcher, so what is added while serving gets a dispatcher of its own for its new lanes;
each lane still has one cursor in the store and one dispatcher delivering it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Unpack, overload

from longline.api.event import Event, typed_batch
from longline.api.options import StreamOptions, assemble, parse_stream
from longline.api.status import LaneStatus, Status, StreamStatus
from longline.config import (
    Config,
    ConfigError,
    StreamConfig,
    load_config,
    parse_config,
)
from longline.config.model import DEFAULT_STORE
from longline.core.secrets import add_secrets
from longline.delivery.dispatcher import Dispatcher, lane_streams
from longline.engine.reload import Diff, ReloadResult, diff
from longline.engine.runner import Runner
from longline.processors.base import Processor
from longline.processors.python import TARGET, PythonProcessor, PythonSettings
from longline.processors.registry import ProcessorSettings
from longline.stores import open_store
from longline.stores.base import Store

__all__ = ["App", "Handler", "Service"]

log = logging.getLogger(__name__)

Handler = Callable[[list[Event]], Awaitable[None] | None]
"""A processor function: gets one batch of one stream's events, in seq order."""
Service = Callable[["App"], contextlib.AbstractAsyncContextManager[object]]
"""Something to run while the app serves (the operators' HTTP listener): entered once the
store is open and delivery is set up, left after the last flush."""
H = TypeVar("H", bound=Handler)


class App:
    """Streams, processors and a store, run together by ``serve()`` (or ``run()``)."""

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        *,
        writer: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        create_tables: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``store`` is a store URL as in the config (``sqlite:///capture.db``, ...);
        ``writer`` the config's ``writer`` section; ``settings`` any other top-level key of a
        config file (``{"shutdown_timeout": "5s"}``); ``env`` (default ``os.environ``) fills
        ``${VAR}``; ``create_tables`` lets DynamoDB create its tables."""
        extra = dict(settings or {})
        for listed in ("streams", "processors"):
            if listed in extra:
                raise ValueError(f"{listed} are added with app.stream() and @app.processor")
        data = {**extra, "store": store, "writer": dict(writer or {}), "streams": []}
        self._setup(parse_config(data, env, allow_no_streams=True), create_tables, env)

    def _setup(self, config: Config, create_tables: bool, env: Mapping[str, str] | None) -> None:
        self._base = config  # store, writer, shutdown_timeout, ...: everything but the lists
        self._store_url: str = config.store
        self._secrets: frozenset[str] = config.secrets
        self._create_tables = create_tables
        self._env = env
        self._streams: dict[str, StreamConfig] = {s.name: s for s in config.streams}
        self._wanted: list[str] = [s.name for s in config.streams]  # started by serve()
        self._processors: list[ProcessorSettings] = list(config.processors)
        self._handlers: dict[str, Handler] = {}
        # While serving (the runner and dispatchers stay afterwards, for status()).
        self._serving = False
        self._capture = self._deliver = False
        self._runner: Runner | None = None
        self._store: Store | None = None  # the open store, while serving
        self._serving_store: Store | None = None  # the store of this serve(), open or not
        self._config: Config | None = None  # the config of this (or the last) serve()
        self._primary: Dispatcher | None = None  # delivers the lanes serve() started with
        self._dispatchers: list[tuple[Dispatcher, asyncio.Task[object]]] = []
        self._lanes: set[tuple[str, str]] = set()
        self._leaving: set[str] = set()  # streams being stopped on purpose
        self._stop: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self._end_check: asyncio.Handle | None = None  # a pending _check_ended
        self._stop_requested = False
        add_secrets(self._secrets)

    @classmethod
    def from_config(
        cls,
        source: str | Path | Config,
        *,
        env: Mapping[str, str] | None = None,
        create_tables: bool = False,
    ) -> App:
        """An App with the store, streams and processors of a config file (or loaded
        ``Config``); raises ``ConfigError`` naming the fields, like ``longline check``."""
        config = source if isinstance(source, Config) else load_config(source, env)
        app = cls.__new__(cls)
        app._setup(config, create_tables, env)
        return app

    # -- declaring ---------------------------------------------------------------------------

    def stream(
        self, name: str, *, transport: str, url: str, **options: Unpack[StreamOptions]
    ) -> None:
        """Declare a stream (before serving); raises ``ConfigError`` naming a bad option."""
        if self._serving:
            raise RuntimeError("the app is serving: use `await app.add_stream(...)`")
        self._declare(name, transport, url, options)

    async def add_stream(
        self, name: str, *, transport: str, url: str, **options: Unpack[StreamOptions]
    ) -> None:
        """Declare a stream and, while serving, start it at once (a stream stopped earlier
        resumes from its checkpoint); processors reading every stream get it too."""
        cfg = self._declare(name, transport, url, options)
        if not self._serving:
            return
        if self._capture and self._runner is not None:
            self._leaving.discard(name)
            self._start_capture(cfg)
        if self._deliver:
            fresh = [
                p for p in self._processors if not p.streams and (p.name, name) not in self._lanes
            ]
            if fresh:
                self._start_delivery([cfg], fresh)

    async def stop_stream(self, name: str) -> StreamStatus:
        """Stop capturing ``name`` (connections closed, what it received committed with its
        checkpoint); its stored events still reach the processors. Returns its last status."""
        if name not in self._streams:
            raise ValueError(f"no stream named {name!r}")
        if name in self._wanted:
            self._wanted.remove(name)
        runner = self._runner
        if self._serving and runner is not None and name in runner.supervisors:
            self._leaving.add(name)
            return StreamStatus.of(name, await runner.stop_stream(name))
        return self.status().streams[name]

    @overload
    def processor(self, fn: H, /) -> H: ...

    @overload
    def processor(
        self,
        /,
        *,
        streams: Sequence[str] | None = None,
        name: str | None = None,
        batch: int = 100,
        retry: Mapping[str, Any] | None = None,
    ) -> Callable[[H], H]: ...

    def processor(
        self,
        fn: Handler | None = None,
        /,
        *,
        streams: Sequence[str] | None = None,
        name: str | None = None,
        batch: int = 100,
        retry: Mapping[str, Any] | None = None,
    ) -> Handler | Callable[[Handler], Handler]:
        """Register ``fn`` (sync or ``async``) to receive batches of ``Event`` of ``streams``
        (default: every stream, also those added later), like a ``kind: python`` processor:
        at least once, in seq order per stream, retried, then dead-lettered. ``name`` (default
        the function's name) keys its delivery cursors in the store; ``retry`` takes the
        config's ``retry`` keys. A plain function runs in a worker thread."""

        def register(f: Handler) -> Handler:
            self._register(f, streams, name, batch, retry)
            return f

        return register if fn is None else register(fn)

    def _register(
        self,
        fn: Handler,
        streams: Sequence[str] | None,
        name: str | None,
        batch: int,
        retry: Mapping[str, Any] | None,
    ) -> None:
        pname = name if name is not None else str(getattr(fn, "__name__", ""))
        entry: dict[str, Any] = {
            "name": pname,
            "kind": "python",
            "target": _target_of(fn),
            "batch": batch,
        }
        if streams is not None:
            entry["streams"] = list(streams)
        if retry is not None:
            entry["retry"] = dict(retry)
        declared = list(self._streams.values())
        config = assemble(self._base, declared, [*self._processors, entry], self._secrets)
        settings = config.processors[-1]
        self._processors.append(settings)
        self._handlers[settings.name] = fn
        if self._serving and self._deliver:
            self._start_delivery(declared, [settings])

    def _declare(
        self, name: str, transport: str, url: str, options: Mapping[str, Any]
    ) -> StreamConfig:
        entry = {"name": name, "transport": transport, "url": url}
        entry.update({k: _plain(v) for k, v in options.items()})
        cfg, secrets = parse_stream(entry, self._env)
        running = self._runner is not None and self._serving and name in self._runner.supervisors
        if name in self._wanted or running:
            raise ConfigError([f"streams.{name}.name: duplicate name (already declared)"])
        streams = {**self._streams, name: cfg}
        assemble(
            self._base,
            list(streams.values()),
            self._processors,
            self._secrets | secrets,
        )
        self._streams = streams
        self._wanted.append(name)
        self._secrets |= secrets
        add_secrets(secrets)
        return cfg

    # -- serving -----------------------------------------------------------------------------

    def run(self, duration: float | None = None) -> Status:
        """Serve in a new event loop until SIGINT/SIGTERM, ``stop()`` or ``duration`` seconds
        (or until every stream ended); returns the final status."""

        async def main() -> Status:
            loop = asyncio.get_running_loop()
            wired = []
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stop)  # main thread only
                    wired.append(sig)
            try:
                return await self.serve(duration)
            finally:
                for sig in wired:
                    loop.remove_signal_handler(sig)

        return asyncio.run(main())

    async def serve(
        self,
        duration: float | None = None,
        *,
        capture: bool = True,
        deliver: bool = True,
        services: Sequence[Service] = (),
    ) -> Status:
        """Run in the current event loop until ``stop()``, ``duration`` seconds, or every
        started stream ended (failed); returns the final status. ``capture=False`` only
        delivers (``longline dispatch``), ``deliver=False`` only captures. ``services`` run
        alongside (the CLI's operators' HTTP listener)."""
        return await self._serve(duration, capture, deliver, None, services)

    @contextlib.asynccontextmanager
    async def running(self, *, capture: bool = True, deliver: bool = True) -> AsyncIterator[App]:
        """Serve in the background for the ``async with`` block: the streams are started when
        it is entered, and everything is flushed and stopped when it is left."""
        ready = asyncio.Event()
        task = asyncio.create_task(self._serve(None, capture, deliver, ready, ()), name="longline")
        started = asyncio.ensure_future(ready.wait())
        await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # raises what prevented the start
            raise RuntimeError("the app stopped while starting")
        try:
            yield self
        finally:
            self.stop()
            await task

    def stop(self) -> None:
        """Ask ``serve()`` to flush and end (safe from a signal handler)."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    @property
    def serving(self) -> bool:
        """``serve()`` is running."""
        return self._serving

    @property
    def runner(self) -> Runner | None:
        """The capture engine of the current (or last) ``serve()``; for the CLI."""
        return self._runner

    @property
    def config(self) -> Config:
        """The whole config this app runs (as of the current or last ``serve()``)."""
        if self._config is not None:
            return self._config
        return assemble(self._base, list(self._streams.values()), self._processors, self._secrets)

    @property
    def store(self) -> Store | None:
        """The store of the current ``serve()`` (open once services start); for services."""
        return self._serving_store

    @property
    def dispatcher(self) -> Dispatcher | None:
        """The dispatcher of the lanes ``serve()`` started with (None without processors)."""
        return self._primary

    async def _serve(
        self,
        duration: float | None,
        capture: bool,
        deliver: bool,
        ready: asyncio.Event | None,
        services: Sequence[Service],
    ) -> Status:
        if self._serving:
            raise RuntimeError("this App is already serving")
        config = assemble(
            self._base,
            list(self._streams.values()),
            self._processors,
            self._secrets,
        )
        store = open_store(config.store, create_tables=self._create_tables)
        self._config, self._serving_store = config, store
        self._serving, self._capture, self._deliver = True, capture, deliver
        self._stop, self._ended = asyncio.Event(), asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self._dispatchers, self._lanes, self._leaving = [], set(), set()
        self._runner = Runner(config, store=store) if capture else None
        try:
            if self._runner is not None:
                await self._capture_and_deliver(self._runner, store, duration, ready, services)
            else:
                await store.open()
                try:
                    await self._deliver_only(store, duration, ready, services)
                finally:
                    await store.close()
        finally:
            self._serving, self._store, self._stop_requested = False, None, False
            self._serving_store = None
        return self.status()

    async def _capture_and_deliver(
        self,
        runner: Runner,
        store: Store,
        duration: float | None,
        ready: asyncio.Event | None,
        services: Sequence[Service],
    ) -> None:
        # Delivery is set up first and stops last: capture never waits for it, and in-flight
        # deliveries finish after capture flushed (their acks need the store).
        primary = self._deliverer(store) if self._deliver else None
        for service in services:
            runner.services.append(self._for_runner(service))
        runner.on_store_failure.append(self.stop)  # a writer gave up on the store: end serve()
        async with runner.opened():
            self._store = store
            try:
                if primary is not None:
                    self._launch(primary)
                for name in self._wanted:
                    self._start_capture(self._streams[name])
                runner.ready()  # systemd Type=notify: store open, streams started
                if ready is not None:
                    ready.set()
                await self._wait(duration)
            finally:
                try:
                    await runner.shutdown()  # bounded by the config's shutdown_timeout
                finally:
                    await runner.bounded(self._stop_delivery(), "stop the processors")
                    self._store = None

    async def _deliver_only(
        self,
        store: Store,
        duration: float | None,
        ready: asyncio.Event | None,
        services: Sequence[Service],
    ) -> None:
        self._store = store
        primary = self._deliverer(store)
        try:
            async with contextlib.AsyncExitStack() as running:
                for service in services:
                    await running.enter_async_context(service(self))
                if primary is not None:
                    self._launch(primary)
                if ready is not None:
                    ready.set()
                try:
                    await self._wait(duration)
                finally:
                    await self._stop_delivery()
        finally:
            self._store = None

    def _for_runner(
        self, service: Service
    ) -> Callable[[Runner], contextlib.AbstractAsyncContextManager[object]]:
        def entered(_: Runner) -> contextlib.AbstractAsyncContextManager[object]:
            return service(self)

        return entered

    def _deliverer(self, store: Store) -> Dispatcher | None:
        """The dispatcher of every processor x every declared stream (not started)."""
        self._primary = None
        if self._processors:
            streams = list(self._streams.values())
            self._primary = self._new_dispatcher(store, streams, self._processors)
        return self._primary

    async def _wait(self, duration: float | None) -> None:
        assert self._stop is not None and self._ended is not None
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stop, self._ended)]
        try:
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _start_capture(self, cfg: StreamConfig) -> None:
        assert self._runner is not None
        self._runner.start_stream(cfg).add_done_callback(self._stream_ended)

    def _stream_ended(self, _: object) -> None:
        """A stream's task ended: check once per loop pass, not once per task (at the end of a
        run every task ends, and a scan each was quadratic: 18,000 streams took minutes to
        stop)."""
        if self._end_check is None:
            self._end_check = asyncio.get_running_loop().call_soon(self._check_ended)

    def _check_ended(self) -> None:
        """End ``serve()`` once every stream it runs has ended by itself (all failed), as
        ``longline run`` always did; streams stopped on purpose do not count."""
        self._end_check = None
        runner, ended = self._runner, self._ended
        if runner is None or ended is None:
            return
        any_counted = False
        for name, task in runner.tasks.items():
            if name in self._leaving:
                continue
            if not task.done():
                return
            any_counted = True
        if any_counted:
            ended.set()

    def _start_delivery(
        self, streams: Sequence[StreamConfig], processors: Sequence[ProcessorSettings]
    ) -> None:
        """One more dispatcher, for the lanes of ``processors`` x ``streams``, started now."""
        assert self._store is not None
        self._launch(self._new_dispatcher(self._store, streams, processors))

    def _new_dispatcher(
        self,
        store: Store,
        streams: Sequence[StreamConfig],
        processors: Sequence[ProcessorSettings],
    ) -> Dispatcher:
        config = assemble(self._base, streams, processors, self._secrets)
        built: dict[str, Processor] = {}
        for settings in config.processors:
            handler = self._handlers.get(settings.name)
            if handler is not None and isinstance(settings, PythonSettings):
                built[settings.name] = PythonProcessor(settings, handler, typed_batch)
            self._lanes.update((settings.name, s) for s in lane_streams(config, settings))
        return Dispatcher(config, store, processors=built)

    def _launch(self, dispatcher: Dispatcher) -> None:
        task: asyncio.Task[object] = asyncio.create_task(dispatcher.run(), name="dispatcher")
        task.add_done_callback(self._delivery_ended)
        self._dispatchers.append((dispatcher, task))

    def _delivery_ended(self, _: object) -> None:
        """Delivering only: end ``serve()`` once no processor could start (as ``longline
        dispatch`` always did)."""
        done = all(task.done() for _, task in self._dispatchers)
        if not self._capture and self._ended is not None and done:
            self._ended.set()

    async def _stop_delivery(self) -> None:
        for dispatcher, _ in self._dispatchers:
            dispatcher.stop()
        tasks = [task for _, task in self._dispatchers]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("dispatcher failed: %r", result)

    # -- live reload (SIGHUP, POST /api/reload: engine/reload.py) --------------------------------

    async def reload(self, new: Config) -> ReloadResult:
        """Apply a re-read config while serving: added streams start, removed ones stop (flushed,
        checkpointed, final status saved), changed ones restart, unchanged ones keep their
        connections; processors likewise on the delivery side (``Dispatcher.apply``)."""
        store = self._store
        if not self._serving or store is None or self._stop is None or self._stop.is_set():
            return ReloadResult(ok=False, errors=["the app is starting or stopping; try again"])
        old = self.config
        streams = diff({c.name: c for c in old.streams}, {c.name: c for c in new.streams})
        runner = self._runner if self._capture else None
        for name in streams.removed + streams.changed:
            if runner is not None and name in runner.supervisors:
                self._leaving.add(name)
                await runner.stop_stream(name)
                await runner.bounded(store.put_status(name, runner.status_of(name)), "save status")
        for name in streams.removed:  # no longer configured: no longer reported
            if runner is not None:
                runner.stats.pop(name, None)
        kept = [p for p in self._processors if p.name in self._handlers]  # @app.processor
        processors = [*new.processors, *(p for p in kept if p.name not in
                                         {q.name for q in new.processors})]  # fmt: skip
        self._streams = {c.name: c for c in new.streams}
        self._wanted = [c.name for c in new.streams]
        self._processors = processors
        self._base, self._secrets = new, self._secrets | new.secrets
        self._config = assemble(new, new.streams, processors, self._secrets)
        if runner is not None:
            runner.config = self._config
            for cfg in new.streams:
                if cfg.name in streams.added + streams.changed:
                    self._leaving.discard(cfg.name)
                    self._start_capture(cfg)
        result = ReloadResult(ok=True, streams=streams)
        if self._deliver:
            result.processors = await self._reload_delivery(store, old)
        return result

    async def _reload_delivery(self, store: Store, old: Config) -> Diff:
        """One dispatcher (the usual case) applies the new lanes itself; after ``add_stream``
        made more, delivery restarts as a whole (cursors make that safe)."""
        config = self.config
        lanes = diff(
            {p.name: (p, lane_streams(old, p)) for p in old.processors},
            {p.name: (p, lane_streams(config, p)) for p in config.processors},
        )
        if not (lanes.added or lanes.removed or lanes.changed):
            return lanes
        if len(self._dispatchers) == 1 and self._primary is not None:
            await self._primary.apply(config)
        else:
            await self._stop_delivery()
            self._dispatchers, self._primary = [], None
            primary = self._deliverer(store)
            if primary is not None:
                self._launch(primary)
        self._lanes = {(p.name, s) for p in config.processors for s in lane_streams(config, p)}
        return lanes

    # -- reading -----------------------------------------------------------------------------

    def status(self) -> Status:
        """Every declared stream's state and counters, and every delivery lane's cursor and
        counters, as of now (in this process; ``longline status`` reads the store)."""
        stats = self._runner.stats if self._runner is not None else {}
        streams = {
            name: StreamStatus.of(name, stats[name])
            if name in stats
            else StreamStatus(name=name, state="not started")
            for name in self._streams
        }
        lanes = {
            key: LaneStatus.of(key[0], key[1], lane)
            for dispatcher, _ in self._dispatchers
            for key, lane in dispatcher.stats.items()
        }
        return Status(running=self._serving, streams=streams, lanes=lanes)

    async def events(
        self,
        stream: str,
        *,
        after: int = 0,
        follow: bool = False,
        poll: float = 0.5,
        page: int = 1000,
    ) -> AsyncIterator[Event]:
        """The stored events of ``stream`` with seq > ``after``, in seq order. With ``follow``,
        keep waiting for new commits (every ``poll`` seconds, at once on PostgreSQL) until the
        caller stops iterating. Works whether or not the app is serving (from any process)."""
        if stream not in self._streams:
            known = ", ".join(self._streams) or "none"
            raise ValueError(f"no stream named {stream!r} (streams: {known})")
        own: Store | None = None
        try:
            while True:
                store = self._store if self._serving else None
                if store is None:  # not serving (or no longer): read through a store of our own
                    if own is None:
                        own = open_store(self._store_url)
                        await own.open()
                    store = own
                got = await store.read(stream, after, page)
                for ev in got:
                    after = ev.seq
                    yield Event.from_stored(stream, ev)
                if len(got) == page:
                    continue
                if not follow:
                    return
                await store.wait_for_events(poll)
        finally:
            if own is not None:
                await own.close()


def _plain(value: Any) -> Any:
    """Mappings and sequences as the dicts and lists a parsed YAML file would hold."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _target_of(fn: Handler) -> str:
    """A ``module:qualname`` naming the function, for display (it is never imported)."""
    module = str(getattr(fn, "__module__", None) or "")
    qualname = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", ""))
    path = ".".join(p for p in qualname.split(".") if p.isidentifier()) or "handler"
    target = f"{module}:{path}"
    return target if TARGET.fullmatch(target) else f"longline.api:{path}"
