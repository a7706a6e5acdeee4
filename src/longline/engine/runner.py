"""Run a whole configuration: one store, one HTTP session, a supervisor and writer per stream.

``Runner`` is what ``longline run`` and ``longline demo`` drive. It saves every stream's status
to the store about once a second so ``longline status`` works from another process, and on
stop it closes connections first, then flushes every writer, so that what was received is
committed with its checkpoint before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from longline.config import Config
from longline.core.keys import Keyer
from longline.engine.stats import StreamStats
from longline.engine.supervisor import Supervisor
from longline.engine.writer import StreamWriter
from longline.stores import open_store
from longline.stores.base import Store

log = logging.getLogger(__name__)


class Runner:
    """Captures every stream of ``config`` until ``stop()`` (or ``duration``)."""

    def __init__(
        self, config: Config, *, store: Store | None = None, status_interval: float = 1.0
    ) -> None:
        self.config = config
        self.store = store or open_store(config.store)
        self.status_interval = status_interval
        self.stats: dict[str, StreamStats] = {}
        self.supervisors: dict[str, Supervisor] = {}
        self.writers: dict[str, StreamWriter] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Ask the run to end (safe from a signal handler)."""
        self._stop.set()

    async def run(
        self,
        duration: float | None = None,
        on_tick: Callable[[Runner], None] | None = None,
    ) -> dict[str, StreamStats]:
        """Run until stopped; returns the final stats per stream."""
        await self.store.open()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=True,
        )
        try:
            tasks = self._start_streams(session)
            status = asyncio.create_task(self._status_loop(on_tick))
            stopper: asyncio.Future[bool] = asyncio.ensure_future(self._stop.wait())
            ended = asyncio.gather(*tasks, return_exceptions=True)
            waits: list[asyncio.Future[Any]] = [stopper, ended]
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            await self._shutdown(ended)
            status.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status
            await self._save_status(final=True)
            if on_tick is not None:
                on_tick(self)
        finally:
            await session.close()
            await self.store.close()
        return self.stats

    def _start_streams(self, session: aiohttp.ClientSession) -> list[asyncio.Task[None]]:
        tasks = []
        now = time.time()
        writer_cfg = self.config.writer
        for cfg in self.config.streams:
            stats = StreamStats(started_at=now, pid=os.getpid())
            keyer = Keyer(cfg.key, cfg.cursor, cfg.transport)
            writer = StreamWriter(
                cfg.name,
                self.store,
                keyer,
                stats,
                batch_max=writer_cfg.batch_max,
                batch_window=writer_cfg.batch_window,
                max_message_size=cfg.max_message_size,
            )
            writer.start()
            sup = Supervisor(cfg, self.store, session, writer, stats)
            self.stats[cfg.name], self.writers[cfg.name] = stats, writer
            self.supervisors[cfg.name] = sup
            tasks.append(asyncio.create_task(sup.run(), name=f"stream:{cfg.name}"))
        return tasks

    async def _shutdown(self, ended: asyncio.Future[list[BaseException | None]]) -> None:
        for sup in self.supervisors.values():
            sup.stop()
        results = await ended
        for name, res in zip(self.supervisors, results, strict=True):
            if isinstance(res, BaseException):
                log.error("stream %s crashed: %r", name, res)
                self.stats[name].state, self.stats[name].reason = "failed", repr(res)
        for name, writer in self.writers.items():
            await writer.close()
            if self.stats[name].state != "failed":
                self.stats[name].state = "stopped"

    async def _status_loop(self, on_tick: Callable[[Runner], None] | None) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            try:
                await self._save_status()
            except Exception as e:  # status is best effort; capture must go on
                log.warning("could not save status: %s", e)
            if on_tick is not None:
                on_tick(self)

    async def _save_status(self, final: bool = False) -> None:
        for name, stats in self.stats.items():
            stats.cursor = await self.store.checkpoint(name)
            await self.store.put_status(name, stats.snapshot())
