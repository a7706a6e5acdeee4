"""Run a whole configuration: one store, one HTTP session, a supervisor and writer per stream.

``Runner`` is what ``longline run`` and ``longline demo`` drive. It saves every stream's status
to the store about once a second so ``longline status`` works from another process, and on
stop it closes connections first, then flushes every writer, so that what was received is
committed with its checkpoint before the process exits.

A stop is bounded by ``shutdown_timeout``: a store that refuses or crawls must not keep the
process running for minutes. What is not committed by then is counted (``uncommitted``) and
left out of the store, so no checkpoint covers it; the final status, the processors (stopped
by ``longline.App`` through ``bounded``) and the store then get ``CLOSE_GRACE`` more. A store
call stuck in a driver thread cannot be cancelled: ``closed_cleanly`` is then False and the
caller (the CLI) exits without waiting for it.

Capture only: processors are delivered by ``delivery.Dispatcher``, which the callers that
want it (``longline.App``, hence ``longline run`` and ``longline dispatch``) run beside the
runner on the same store. Worker mode and the Lambda handler never deliver.

``run`` starts every configured stream. Worker mode (``engine/workers.py``) instead opens the
runner with ``opened()`` and starts and stops single streams (``start_stream``,
``stop_stream``) as it gains and loses their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp

from longline.config import Config, StreamConfig
from longline.core.keys import Keyer
from longline.core.secrets import redact_stored
from longline.engine import systemd
from longline.engine.gate import ConnectGate
from longline.engine.stats import StreamStats
from longline.engine.summary import Periodic, stream_lines
from longline.engine.supervisor import Supervisor
from longline.engine.writer import StoreSignal, StreamWriter
from longline.stores import open_store
from longline.stores.base import BatchStatus, Store
from longline.transports.http import refusal_trace
from longline.transports.registry import REGISTRY as TRANSPORTS
from longline.transports.tls import fit_tls_read_buffer

log = logging.getLogger(__name__)
CLOSE_GRACE = 0.5  # after the commit deadline: for the final status and closing the store
STATUS_BATCH = 1000  # statuses saved per store call where the store can (``BatchStatus``)
STATUS_REFRESH = 4.0  # an unchanged status is saved this often (`status` calls 10 s "dead")


class Runner:
    """Captures every stream of ``config`` until ``stop()`` (or ``duration``)."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        status_interval: float = 1.0,
        epochs: dict[str, int] | None = None,
        worker: str | None = None,
    ) -> None:
        self.config = config
        self.store = store or open_store(config.store)
        self.status_interval = status_interval
        self.epochs = dict(epochs or {})
        # Worker mode: this worker's id goes into every saved status, with the lease epoch.
        self.worker = worker
        self.stats: dict[str, StreamStats] = {}  # kept after a stream stops (final numbers)
        self.supervisors: dict[str, Supervisor] = {}  # the streams running now
        self.writers: dict[str, StreamWriter] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self.gate = ConnectGate(config.connect_rate)
        self._session: aiohttp.ClientSession | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._on_tick: Callable[[Runner], None] | None = None
        self._down = False
        self._close_by: float | None = None  # loop time by which closing must be done
        self.closed_cleanly = True  # False: a closing step was abandoned (see module doc)
        # Started once the store is open, stopped after the last flush (the operators' HTTP
        # listener: ops/http.py): each is called with this runner.
        self.services: list[Callable[[Runner], contextlib.AbstractAsyncContextManager[object]]] = []
        self.status_error: str | None = None  # why the last status save failed, if it did
        # A writer gave up on the store (store_patience ran out, or a permanent refusal): the
        # run stops, and these are called too (``longline.App`` stops its own serve()).
        self.store_failure: str | None = None
        self.store_signal = StoreSignal()  # a status save or a commit wakes backed-off writers
        self.on_store_failure: list[Callable[[], None]] = []
        # Called with a stream's name and final stats when ``stop_stream`` stopped it (a live
        # reload, a lost lease): the operators' listener folds the run into its counters.
        self.on_stream_stopped: list[Callable[[str, StreamStats], None]] = []

    def stop(self) -> None:
        """Ask the run to end (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """``stop()`` was called."""
        return self._stop.is_set()

    async def wait_stop(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, returning early (True) once ``stop()`` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout)
        return self._stop.is_set()

    async def run(
        self,
        duration: float | None = None,
        on_tick: Callable[[Runner], None] | None = None,
    ) -> dict[str, StreamStats]:
        """Run every stream until stopped (or all of them ended); returns the final stats."""
        async with self.opened(on_tick):
            tasks = [self.start_stream(c, self.epochs.get(c.name)) for c in self.config.streams]
            self.ready()
            stopper: asyncio.Future[bool] = asyncio.ensure_future(self._stop.wait())
            ended = asyncio.gather(*tasks, return_exceptions=True)
            waits: list[asyncio.Future[Any]] = [stopper, ended]
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            await self.shutdown()
        return self.stats

    def ready(self) -> None:
        """Tell systemd (``Type=notify``) that the store is open and the streams started."""
        systemd.notify(f"READY=1\nSTATUS=capturing {len(self.supervisors)} stream(s)")

    @contextlib.asynccontextmanager
    async def opened(self, on_tick: Callable[[Runner], None] | None = None) -> AsyncIterator[None]:
        """Open the store, the HTTP session and the status loop, with no stream started; call
        ``shutdown()`` inside to flush before everything closes."""
        await self.store.open()
        fit_tls_read_buffer()  # 16 KiB per wss:// connection instead of asyncio's 256 KiB
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
            trace_configs=[refusal_trace()],
            trust_env=True,  # HTTP(S)_PROXY, NO_PROXY
        )
        self._on_tick, self._down, self._close_by = on_tick, False, None
        self.closed_cleanly = True
        summary = Periodic(
            self.config.log_summary_interval, lambda b, s: stream_lines(self.stats, b, s)
        )
        summary.start()
        services = contextlib.AsyncExitStack()
        watchdog = asyncio.create_task(systemd.watchdog(), name="watchdog")
        try:
            for service in self.services:
                await services.enter_async_context(service(self))
            self._status_task = asyncio.create_task(self._status_loop(on_tick))
            yield
        finally:
            watchdog.cancel()
            if not self._down:  # left by an error: still commit what was received
                self._close_by = await self._halt(list(self.supervisors), self._deadline())
            await self._cancel_status()
            await self.bounded(services.aclose(), "stop the HTTP listener")
            session, self._session = self._session, None
            await session.close()
            await self.bounded(self.store.close(), "close the store")
            await summary.stop()

    def start_stream(self, cfg: StreamConfig, epoch: int | None = None) -> asyncio.Task[None]:
        """Start capturing ``cfg`` (its writer commits under lease ``epoch`` when given)."""
        if self._session is None:
            raise RuntimeError("start_stream needs an opened runner")
        if cfg.name in self.supervisors:
            raise ValueError(f"stream {cfg.name!r} is already running")
        if epoch is None:
            self.epochs.pop(cfg.name, None)
        else:
            self.epochs[cfg.name] = epoch
        stats = StreamStats(started_at=time.time(), pid=os.getpid())
        writer_cfg = self.config.writer
        writer = StreamWriter(
            cfg.name,
            self.store,
            Keyer(cfg.key, cfg.cursor, cfg.transport, sse=TRANSPORTS.get(cfg.transport).sse),
            stats,
            batch_max=writer_cfg.batch_max,
            batch_window=writer_cfg.batch_window,
            max_message_size=cfg.max_message_size,
            epoch=epoch,
            secrets=self.config.secrets,
            patience=self.config.store_patience or None,
            on_give_up=self._store_gave_up,
            store_signal=self.store_signal,
        )
        writer.start()
        sup = Supervisor(cfg, self.store, self._session, writer, stats, self.gate)
        self.stats[cfg.name], self.writers[cfg.name] = stats, writer
        self.supervisors[cfg.name] = sup
        task = asyncio.create_task(sup.run(), name=f"stream:{cfg.name}")
        self.tasks[cfg.name] = task
        return task

    def _store_gave_up(self, stream: str, reason: str) -> None:
        """A writer stopped retrying the store: stop the whole run (the others would too)."""
        if self.store_failure is None:
            self.store_failure = reason
            self.stop()
            for hook in self.on_store_failure:
                hook()

    async def stop_stream(self, name: str) -> StreamStats:
        """Close the stream's connections, flush its writer and forget it (its status is no
        longer saved); returns its final stats."""
        await self._halt([name], self._deadline())
        for running in (self.supervisors, self.writers, self.tasks):
            running.pop(name, None)
        stats = self.stats[name]
        for hook in list(self.on_stream_stopped):
            hook(name, stats)
        return stats

    async def shutdown(self) -> None:
        """Stop every stream (connections first, then flush each writer, all within
        ``shutdown_timeout``), save the final status."""
        if self._down:
            return
        self._down = True
        systemd.notify("STOPPING=1")
        self._close_by = await self._halt(list(self.supervisors), self._deadline())
        await self._cancel_status()
        await self.bounded(self._save_status(every=True), "save the final status")
        if self._on_tick is not None:
            self._on_tick(self)

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.shutdown_timeout

    async def _halt(self, names: list[str], deadline: float) -> float:
        """Close the connections of ``names`` (all at once), then flush their writers until
        ``deadline`` (loop time); returns the loop time by which closing must be done."""
        loop = asyncio.get_running_loop()
        for name in names:
            self.supervisors[name].stop()
            self.writers[name].release()
        tasks = [self.tasks[n] for n in names]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for task in stuck:  # a reconnect waiting for its flush, on a store that hangs
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        for name, task in zip(names, tasks, strict=True):
            if self.writers[name].gave_up is not None:
                continue  # its connection ended because the writer gave up: reported below
            if not task.cancelled() and (error := task.exception()) is not None:
                log.error("stream %s crashed: %r", name, error, extra={"stream": name})
                self.stats[name].state, self.stats[name].reason = "failed", repr(error)
        left = await asyncio.gather(
            *(self.writers[n].close(max(0.0, deadline - loop.time())) for n in names),
            return_exceptions=True,
        )
        for name, res in zip(names, left, strict=True):
            self._closed(name, res)
        return max(deadline, loop.time()) + CLOSE_GRACE

    def _closed(self, name: str, left: int | BaseException) -> None:
        """Record how the writer of ``name`` closed: all committed, some left, or crashed."""
        stats, writer = self.stats[name], self.writers[name]
        if isinstance(left, BaseException):
            log.error("stream %s: writer crashed: %r", name, left, extra={"stream": name})
            stats.state, stats.reason = "failed", repr(left)
            left = writer.uncommitted
        stats.uncommitted = left
        if writer.gave_up is not None:
            stats.state, stats.reason = "failed", writer.gave_up
            return
        if left:
            why = writer.store_error or "the store was too slow"
            limit = f"shutdown_timeout {self.config.shutdown_timeout:g}s"
            stats.reason = f"{left} items not committed within {limit} ({why})"
        if stats.state != "failed":
            stats.state = "stopped"

    async def bounded(self, step: Coroutine[Any, Any, object], what: str) -> None:
        """Run a closing step until ``_close_by``; past it, abandon the step (and log so)."""
        loop = asyncio.get_running_loop()
        close_by = self._close_by if self._close_by is not None else self._deadline()
        task = asyncio.ensure_future(step)
        done, _ = await asyncio.wait([task], timeout=max(close_by - loop.time(), 0.05))
        if not done:
            task.cancel()
            self.closed_cleanly = False
            log.warning("could not %s within shutdown_timeout; gave up on it", what)
        elif not task.cancelled() and (error := task.exception()) is not None:
            log.warning("could not %s: %s", what, error)

    async def _cancel_status(self) -> None:
        status, self._status_task = self._status_task, None
        if status is not None:
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status

    async def _status_loop(self, on_tick: Callable[[Runner], None] | None) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            try:
                await self._save_status()
                self.status_error = None
                if self.supervisors:
                    self.store_signal.ok()
            except Exception as e:  # status is best effort; capture must go on
                self.status_error = str(e)
                log.warning("could not save status: %s", e)
            if on_tick is not None:
                on_tick(self)

    async def _save_status(self, *, every: bool = False) -> None:
        """Save the status of every running stream that changed, and of the others at least
        every ``STATUS_REFRESH`` seconds (``updated_at`` tells `longline status` the process
        is alive): 10,000 idle streams need not be encoded and written every second.
        ``every``: all of them (the final status)."""
        # The checkpoint is not copied in: `longline status` reads it from the store itself.
        store = self.store
        now = asyncio.get_running_loop().time()
        due = [n for n in self.supervisors if self._status_due(n, now) or every]
        if isinstance(store, BatchStatus):  # thousands of streams: a few calls, not thousands
            for start in range(0, len(due), STATUS_BATCH):
                chunk = [n for n in due[start : start + STATUS_BATCH] if n in self.supervisors]
                try:
                    await store.put_statuses({n: self.status_of(n) for n in chunk})
                except BaseException:
                    self._status_not_saved(due[start:])
                    raise
            return
        for i, name in enumerate(due):
            if name in self.supervisors:  # not stopped meanwhile (its new owner reports it)
                try:
                    await store.put_status(name, self.status_of(name))
                except BaseException:
                    self._status_not_saved(due[i:])
                    raise

    def _status_due(self, name: str, now: float) -> bool:
        """True when ``name``'s status changed since it was saved, or was saved long ago;
        marks it saved (``_status_not_saved`` undoes that when the save fails)."""
        stats = self.stats[name]
        mark = hash((stats.mark(), self.epochs.get(name)))
        if mark == stats.saved_mark and now - stats.saved_at < STATUS_REFRESH:
            return False
        stats.saved_mark, stats.saved_at = mark, now
        return True

    def _status_not_saved(self, names: list[str]) -> None:
        for name in names:
            if (stats := self.stats.get(name)) is not None:
                stats.saved_mark = 0

    def status_of(self, name: str) -> dict[str, Any]:
        """The status saved for ``name``; in worker mode with the owner and its lease epoch."""
        snap = self.stats[name].snapshot()
        if snap.get("reason"):  # may quote a URL or a provider's reply: never store a secret
            snap["reason"] = redact_stored(snap["reason"], self.config.secrets)
        if self.worker is not None:
            snap["worker"], snap["epoch"] = self.worker, self.epochs.get(name)
        return snap
