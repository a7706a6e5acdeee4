"""Worker mode: several ``longline run --worker`` processes split one store's streams by leases.

The pattern is the Kinesis Client Library's. Every round (``ttl / 3``, jittered so that workers
do not contend in lockstep) a worker renews the leases it holds and tries to acquire the lease of
each stream nobody holds (never taken, released, or expired because its worker died), up to
``max_streams``; it captures each acquired stream under that lease's epoch. A stream whose lease
moved to a newer epoch (the renewal says so, or an append came back fenced) is stopped at once:
its connections close and its writer flushes; the store inserts those events (the key drops any
repeat) but refuses their checkpoint, so a stale worker never moves a checkpoint. Such a stream
is only taken back once its lease is free again. On a clean shutdown a worker flushes, then
expires its leases (renewal with a ttl of 0) so that another worker takes them in its next round.

There is no lease stealing: a worker without ``max_streams`` takes every free stream, and the
streams spread out only as far as the caps make them. Processors are left to one
``longline dispatch`` process (every worker delivering every lane would multiply deliveries).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time

from longline.config import Config, StreamConfig
from longline.core.model import Lease
from longline.engine.leases import LeaseKeeper
from longline.engine.runner import Runner
from longline.engine.stats import StreamStats
from longline.stores.base import Store

__all__ = ["DEFAULT_LEASE_TTL", "Worker", "default_worker_id"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 15.0
CHECK_PERIOD = 0.1  # how often superseded streams are looked for (in memory, no store call)


def default_worker_id() -> str:
    """``HOST:PID``: unique among live workers, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Captures the streams of ``config`` whose leases this worker holds, until ``stop()``."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        worker_id: str | None = None,
        max_streams: int | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        status_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if not lease_ttl > 0:
            raise ValueError(f"lease_ttl must be > 0, not {lease_ttl!r}")
        if max_streams is not None and max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, not {max_streams!r}")
        self.id = worker_id or default_worker_id()
        self.max_streams = max_streams
        self.ttl = lease_ttl
        self.runner = Runner(config, store=store, status_interval=status_interval, worker=self.id)
        if config.processors:
            log.warning("worker mode does not run processors: run `longline dispatch` once")
        self.keepers: dict[str, LeaseKeeper] = {}
        self._rng = rng or random.Random()

    @property
    def store(self) -> Store:
        return self.runner.store

    def stop(self) -> None:
        """Ask the worker to flush, release its leases and end (safe from a signal handler)."""
        self.runner.stop()

    async def run(self, duration: float | None = None) -> dict[str, StreamStats]:
        """Take, capture and give up streams until stopped; returns the stats per stream."""
        runner = self.runner
        loop = asyncio.get_running_loop()
        end = None if duration is None else loop.time() + duration
        async with runner.opened():
            try:
                next_round, ready = loop.time(), False
                while not runner.stopping and (end is None or loop.time() < end):
                    await self._drop_superseded()
                    if loop.time() >= next_round:
                        await self._round()
                        if not ready:  # the store is open and the first streams started
                            runner.ready()
                            ready = True
                        # At most ttl/3 between renewals, jittered below it.
                        next_round = loop.time() + self.ttl / 3 * self._rng.uniform(0.7, 1.0)
                    await runner.wait_stop(min(CHECK_PERIOD, max(0.0, next_round - loop.time())))
            finally:
                try:
                    await runner.shutdown()  # flush under our epochs before letting go
                finally:
                    await runner.bounded(self._release(), "release the leases")
        return runner.stats

    # -- one round: renew, then acquire ------------------------------------------------------

    async def _round(self) -> None:
        keepers = list(self.keepers.values())
        results = await asyncio.gather(*(k.refresh() for k in keepers), return_exceptions=True)
        for keeper, res in zip(keepers, results, strict=True):
            if isinstance(res, Exception):  # the lease outlives a few failed renewals
                log.warning("stream %s: lease renewal failed: %s", keeper.lease.stream, res)
        await self._drop_superseded()
        await self._acquire()

    async def _acquire(self) -> None:
        free = [s for s in self.runner.config.streams if s.name not in self.keepers]
        self._rng.shuffle(free)  # workers starting together then rarely ask for the same one
        for cfg in free:
            if self.runner.stopping:
                return
            if self.max_streams is not None and len(self.keepers) >= self.max_streams:
                return
            try:
                # A read first: most streams are held, and acquiring is a write transaction.
                held = await self.store.get_lease(cfg.name)
                if held is not None and held.expires_at > time.time():
                    continue
                lease = await self.store.acquire_lease(cfg.name, self.id, self.ttl)
            except Exception as e:
                log.warning(
                    "worker %s: cannot acquire stream %s: %s", self.id, cfg.name, e,
                    extra={"stream": cfg.name},
                )  # fmt: skip
                return
            if lease is not None:
                self._start(cfg, lease)

    def _start(self, cfg: StreamConfig, lease: Lease) -> None:
        previous = "" if lease.epoch == 1 else f" (from epoch {lease.epoch - 1})"
        log.info(
            "worker %s: took stream %s at epoch %d%s", self.id, cfg.name, lease.epoch, previous,
            extra={"stream": cfg.name},
        )  # fmt: skip
        self.runner.start_stream(cfg, lease.epoch)
        keeper = LeaseKeeper(self.store, lease, self.ttl, self.runner.writers[cfg.name])
        self.keepers[cfg.name] = keeper  # renewed by ``_round``, not by its own task

    # -- losing and releasing --------------------------------------------------------------

    async def _drop_superseded(self) -> None:
        for name, keeper in list(self.keepers.items()):
            if keeper.superseded:
                del self.keepers[name]
                await self.runner.stop_stream(name)
                await self._report_superseded(name, keeper.lease)

    async def _report_superseded(self, name: str, ours: Lease) -> None:
        """Log who took the stream and save a last "stopped" status, unless the new owner
        already saved its own."""
        try:
            now = await self.store.get_lease(name)
            owner = f"{now.owner} (epoch {now.epoch})" if now else "another worker"
            log.warning(
                "worker %s: stream %s was taken over by %s", self.id, name, owner,
                extra={"stream": name},
            )  # fmt: skip
            saved = (await self.store.get_status()).get(name) or {}
            if int(saved.get("epoch") or 0) > ours.epoch:
                return
            status = self.runner.status_of(name)
            status["reason"] = f"lease taken over by {owner}"
            await self.store.put_status(name, status)
        except Exception as e:  # status is best effort
            log.warning("stream %s: could not save status: %s", name, e)

    async def _release(self) -> None:
        """Expire the leases still ours, so that other workers take them at once."""
        for name, keeper in list(self.keepers.items()):
            if keeper.superseded:
                continue
            try:
                await self.store.renew_lease(keeper.lease, 0.0)
            except Exception as e:  # it then expires after the ttl
                log.warning("worker %s: cannot release stream %s: %s", self.id, name, e)
        self.keepers.clear()
