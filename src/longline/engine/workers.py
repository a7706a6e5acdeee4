"""Worker mode: several ``longline run --worker`` processes split one store's streams by leases.

The pattern is the Kinesis Client Library's, in three loops that never wait on each other:

- *Renewal* (every ``ttl / 3``, jittered): on a store that renews in batches (SQLite, memory:
  ``BatchLeases``), ``RENEW_BATCH`` leases per call, since there every write takes the one
  database lock anyway; elsewhere each held lease is renewed on its own, by one of
  ``LEASE_LANES`` lanes that make every lease call, so a slow or hung store call for one lease
  never holds back the others. (It once did: a worker waiting for the row lock of a stream
  whose owner was frozen mid-append stopped renewing everything it held, its leases expired
  and the streams churned between workers.) Lanes, not a task per call: 10,000 leases would
  otherwise mean 10,000 tasks at once every round, whose memory stays with the process.
- *Balance* (every ``ttl / 6``, jittered): one read of every lease. The workers are the owners
  of unexpired leases plus this one; the fair share is ``ceil(streams / workers)`` (capped by
  ``max_streams``). Below it, the worker first takes free streams (never leased, released, or
  expired because their worker died: ``TAKE_BATCH`` per call on a ``BatchLeases`` store,
  else ``TAKE_LANES`` calls at once); when none is free and the most loaded worker holds at
  least two more than this one, it *steals* from it (half the difference, at most up to the
  share), choosing leases whose owner has gone live. A stream free for longer than a ttl is
  taken by anyone with room, so disagreeing counts can never leave a stream uncaptured.
- *Handover* (every ``CHECK_PERIOD``): a stream whose lease moved to a newer epoch (seen by a
  renewal or a fenced append) keeps being captured until the new owner's lease is *live* (it
  has committed, or its connection has been live for a renewal period) or a ttl passed, and
  only then stops: make-before-break. Meanwhile the store still inserts the old owner's events
  (the key drops repeats) but refuses its checkpoint, so a stale worker never moves one. Once
  the successor is live the old owner commits nothing more (its writer asks the keeper before
  each append), and an owner paused past its lease asks the store before its next commit.

On a clean shutdown a worker flushes, then expires its leases (renewal with a ttl of 0) so
that the other workers take them in their next round. Processors are left to one
``longline dispatch`` process (every worker delivering every lane would multiply deliveries).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections import Counter
from typing import Any

from longline.config import Config, StreamConfig
from longline.core.model import Lease
from longline.engine.leases import LeaseKeeper
from longline.engine.runner import Runner
from longline.engine.stats import StreamStats
from longline.stores.base import BatchLeases, BatchStatus, Store

__all__ = ["DEFAULT_LEASE_TTL", "Worker", "default_worker_id", "fair_share"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = 15.0
CHECK_PERIOD = 0.1  # handovers and first commits are looked at this often (in memory)
HANDOVER_POLL = 0.2  # a superseded stream reads its successor's lease this often
TAKE_LANES = 3  # free streams taken at once in a balance round (each a store call)
TAKE_BATCH = 250  # free streams taken per store call, where the store can (``BatchLeases``)
LEASE_LANES = 16  # renewals and handover polls under way at once
RENEW_BATCH = 500  # leases renewed per store call, where the store can (``BatchLeases``)


def default_worker_id() -> str:
    """``HOST:PID``: unique among live workers, and says where to look."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fair_share(streams: int, workers: int, cap: int | None = None) -> int:
    """How many streams one of ``workers`` workers should hold: ``ceil(streams / workers)``."""
    share = -(-streams // max(workers, 1))
    return share if cap is None else min(share, cap)


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
        self._busy: set[str] = set()  # streams with a lease call under way
        self._wanted: dict[str, LeaseKeeper] = {}  # streams waiting for a lease call, in order
        self._call_due = asyncio.Event()  # set when ``_wanted`` is not empty
        self._noticed: dict[str, float] = {}  # superseded stream -> loop time first seen
        self._polled: dict[str, float] = {}  # superseded stream -> loop time last polled
        self._live_since: dict[str, float] = {}  # stream -> loop time its connection went live
        # stream -> (epoch, loop time this worker first saw it): a lease is stolen only once it
        # has settled for a ttl, so a stream that just moved is not moved again at once.
        self._epoch_seen: dict[str, tuple[int, float]] = {}
        # Streams whose owner just went live, told to the store together (``BatchLeases``):
        # 12,500 streams taken at once go live at once, and a renewal each was 12,500 writes.
        self._live_due: dict[str, LeaseKeeper] = {}

    @property
    def store(self) -> Store:
        return self.runner.store

    def stop(self) -> None:
        """Ask the worker to flush, release its leases and end (safe from a signal handler)."""
        self.runner.stop()

    def held(self) -> list[str]:
        """The streams this worker holds and is not handing over."""
        return [name for name, k in self.keepers.items() if not k.superseded]

    async def run(self, duration: float | None = None) -> dict[str, StreamStats]:
        """Take, capture and give up streams until stopped; returns the stats per stream."""
        runner = self.runner
        loop = asyncio.get_running_loop()
        end = None if duration is None else loop.time() + duration
        async with runner.opened():
            renewal = asyncio.create_task(self._renew_loop(), name="leases:renew")
            lanes = [
                asyncio.create_task(self._lane(), name=f"leases:lane{i}")
                for i in range(LEASE_LANES)
            ]
            try:
                next_round, ready = loop.time(), False
                while not runner.stopping and (end is None or loop.time() < end):
                    await self._check()
                    if loop.time() >= next_round:
                        await self._balance()
                        if not ready:  # the store is open and the first streams started
                            runner.ready()
                            ready = True
                        next_round = loop.time() + self._period(6)
                    await runner.wait_stop(min(CHECK_PERIOD, max(0.0, next_round - loop.time())))
            finally:
                renewal.cancel()
                for task in [renewal, *lanes]:
                    task.cancel()
                await asyncio.gather(renewal, *lanes, return_exceptions=True)
                try:
                    await runner.shutdown()  # flush under our epochs before letting go
                finally:
                    await runner.bounded(self._release(), "release the leases")
        return runner.stats

    def _period(self, parts: int) -> float:
        """``ttl / parts``, jittered below it so that workers do not act in lockstep."""
        return max(self.ttl / parts * self._rng.uniform(0.7, 1.0), 0.05)

    def _want(self, name: str, keeper: LeaseKeeper) -> None:
        """Ask for one lease call for ``name`` (once, however often asked before it runs)."""
        self._wanted[name] = keeper
        self._call_due.set()

    async def _lane(self) -> None:
        """Make the lease calls asked for, one at a time, oldest request first."""
        wanted = self._wanted
        while True:
            if not wanted:
                self._call_due.clear()
                await self._call_due.wait()
                continue
            name = next(iter(wanted))
            await self._refresh(name, wanted.pop(name))

    # -- renewal -----------------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        store = self.store
        while True:
            held = [(n, k) for n, k in self.keepers.items() if not k.superseded]
            if isinstance(store, BatchLeases):
                await self._renew_batches(store, [k for _, k in held])
            else:
                for name, keeper in held:
                    self._want(name, keeper)
            await asyncio.sleep(self._period(3))

    async def _renew_batches(self, store: BatchLeases, held: list[LeaseKeeper]) -> None:
        """Renew ``held`` ``RENEW_BATCH`` leases per store call (a store with ``BatchLeases``)."""
        loop = asyncio.get_running_loop()
        for start in range(0, len(held), RENEW_BATCH):
            chunk = [k for k in held[start : start + RENEW_BATCH] if not k.superseded]
            sent = loop.time()
            try:
                current = await store.renew_leases([k.renewal() for k in chunk], self.ttl)
            except Exception as e:  # the leases outlive a few failed renewals
                log.warning("worker %s: renewing %d leases failed: %s", self.id, len(chunk), e)
                continue
            for keeper, lease in zip(chunk, current, strict=True):
                keeper.renewed(lease, sent)

    async def _refresh(self, name: str, keeper: LeaseKeeper) -> None:
        """One lease call for ``name`` at a time (a hung one is not piled upon)."""
        if name in self._busy:
            return
        self._busy.add(name)
        try:
            await keeper.refresh()
        except Exception as e:  # the lease outlives a few failed renewals
            log.warning("stream %s: lease renewal failed: %s", name, e)
        finally:
            self._busy.discard(name)

    # -- first commits and handovers ---------------------------------------------------------

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        gone: list[tuple[str, LeaseKeeper, float]] = []  # superseded, to stop now
        for name, keeper in list(self.keepers.items()):
            if not keeper.superseded:
                self._mark_ready(name, keeper, now)
                continue
            if name not in self._noticed:
                self._noticed[name] = now
                self._polled.pop(name, None)
            noticed = self._noticed[name]
            if now - self._polled.get(name, 0.0) >= HANDOVER_POLL:
                self._polled[name] = now
                self._want(name, keeper)
            if keeper.successor_live or now - noticed >= self.ttl:
                gone.append((name, keeper, now - noticed))
        if gone:
            await self._let_go(gone)
        store = self.store
        if self._live_due and isinstance(store, BatchLeases):
            due, self._live_due = list(self._live_due.values()), {}
            await self._renew_batches(store, due)

    def _mark_ready(self, name: str, keeper: LeaseKeeper, now: float) -> None:
        """Tell the store as soon as this owner captures (a predecessor waits for it): once it
        committed, or once its connection has been live for a renewal period (an idle feed)."""
        if keeper.current.live:
            return
        stats = self.runner.stats[name]
        if stats.state == "live":
            since = self._live_since.setdefault(name, now)
        else:
            since = self._live_since.pop(name, now)
        keeper.ready = keeper.ready or now - since >= self.ttl / 3
        due = now - self._polled.get(name, 0.0) >= HANDOVER_POLL
        if due and (keeper.ready or stats.events + stats.duplicates > 0):
            self._polled[name] = now
            if isinstance(self.store, BatchLeases):
                self._live_due[name] = keeper  # one renewal call for all, in ``_check``
            else:
                self._want(name, keeper)

    async def _let_go(self, gone: list[tuple[str, LeaseKeeper, float]]) -> None:
        """Stop the streams whose successors took over (``(name, keeper, seconds waited)``)."""
        for name, _, _ in gone:
            del self.keepers[name]
            for seen in (
                self._noticed, self._polled, self._live_since, self._wanted, self._live_due
            ):  # fmt: skip
                seen.pop(name, None)
            await self.runner.stop_stream(name)
        await self._report_superseded(gone)

    async def _report_superseded(self, gone: list[tuple[str, LeaseKeeper, float]]) -> None:
        """Log who took each stream and save a last "stopped" status, unless the new owner
        already saved its own. The saved statuses are read once for all of them: it is a
        read of every stream's, and once per stream it held up the worker for minutes when
        thousands of streams moved at once."""
        try:
            saved = await self.store.get_status()
        except Exception as e:  # status is best effort
            log.warning("worker %s: could not read the statuses: %s", self.id, e)
            saved = {}
        statuses: dict[str, dict[str, Any]] = {}
        for name, keeper, waited in gone:
            try:
                now = await self.store.get_lease(name)
            except Exception as e:
                log.warning("stream %s: could not read its lease: %s", name, e)
                now = None
            owner = f"{now.owner} (epoch {now.epoch})" if now else "another worker"
            how = "after it went live" if keeper.successor_live else f"after {waited:.1f}s"
            log.warning(
                "worker %s: stream %s was taken over by %s; stopped %s", self.id, name, owner, how,
                extra={"stream": name},
            )  # fmt: skip
            if int((saved.get(name) or {}).get("epoch") or 0) > keeper.lease.epoch:
                continue  # the new owner saved its own
            status = self.runner.status_of(name)
            status["reason"] = f"lease taken over by {owner}"
            statuses[name] = status
        try:
            store = self.store
            if isinstance(store, BatchStatus):
                await store.put_statuses(statuses)
            else:
                for name, status in statuses.items():
                    await store.put_status(name, status)
        except Exception as e:  # status is best effort
            log.warning("worker %s: could not save %d statuses: %s", self.id, len(statuses), e)

    # -- balance: take free streams, then steal toward a fair share --------------------------

    async def _balance(self) -> None:
        try:
            leases = await self.store.leases()
        except Exception as e:
            log.warning("worker %s: cannot read the leases: %s", self.id, e)
            return
        streams = self.runner.config.streams
        names = {s.name for s in streams}
        now = time.time()
        current = {n: lease for n, lease in leases.items() if n in names}
        seen_now = asyncio.get_running_loop().time()
        for n, seen in current.items():
            if self._epoch_seen.get(n, (None, 0.0))[0] != seen.epoch:
                self._epoch_seen[n] = (seen.epoch, seen_now)
        others = Counter(
            lease.owner
            for lease in current.values()
            if lease.owner != self.id and lease.expires_at > now
        )
        share = fair_share(len(streams), len(others) + 1, self.max_streams)
        log.debug(
            "worker %s: holds %d, share %d, others %s", self.id, len(self.held()), share, others
        )
        free = [
            s
            for s in streams
            if s.name not in self.keepers
            and ((lease := current.get(s.name)) is None or lease.expires_at <= now)
        ]
        self._rng.shuffle(free)  # workers starting together then rarely ask for the same one
        chosen: list[StreamConfig] = []
        held = len(self.held())
        for cfg in free:
            lease = current.get(cfg.name)
            overdue = lease is not None and lease.expires_at < now - self.ttl
            room = held < share or (
                overdue and (self.max_streams is None or held < self.max_streams)
            )
            if room and not self.runner.stopping:
                chosen.append(cfg)
                held += 1
        store = self.store
        if isinstance(store, BatchLeases):
            await self._take_batches(store, chosen)
        else:
            # A few at a time: on PostgreSQL a take waits up to 2 s for the row lock of a
            # stream whose dead or frozen owner was mid-commit, and must not hold back the
            # others (one after another, a frozen worker's 6 locked streams once delayed the
            # rest by 12 s).
            lanes = asyncio.Semaphore(TAKE_LANES)

            async def take(cfg: StreamConfig) -> None:
                async with lanes:
                    if not self.runner.stopping:
                        await self._take(cfg, force=False)

            await asyncio.gather(*(take(cfg) for cfg in chosen))
        if free or not others:
            return
        victim, most = others.most_common(1)[0]
        mine = len(self.held())
        if most - mine < 2 or mine >= share:
            return
        wanted = min(share - mine, (most - mine) // 2)
        theirs = [
            s
            for s in streams
            if (lease := current.get(s.name)) is not None
            and lease.owner == victim
            and lease.live
            and lease.expires_at > now
            and seen_now - self._epoch_seen[s.name][1] >= self.ttl
            and s.name not in self.keepers
        ]
        self._rng.shuffle(theirs)
        for cfg in theirs[:wanted]:
            if self.runner.stopping:
                return
            log.info(
                "worker %s: stealing stream %s from %s (%d > %d)",
                self.id,
                cfg.name,
                victim,
                most,
                mine,
            )
            await self._take(cfg, force=True)

    async def _take_batches(self, store: BatchLeases, chosen: list[StreamConfig]) -> None:
        """Take free streams ``TAKE_BATCH`` per store call (a store with ``BatchLeases``): on
        SQLite each take is a write transaction, and 50,000 of them from four workers queued
        behind one another's locks (docs/benchmarks.md)."""
        for start in range(0, len(chosen), TAKE_BATCH):
            if self.runner.stopping:
                return
            chunk = {cfg.name: cfg for cfg in chosen[start : start + TAKE_BATCH]}
            try:
                taken = await store.acquire_leases(list(chunk), self.id, self.ttl)
            except Exception as e:
                log.warning("worker %s: cannot take %d streams: %s", self.id, len(chunk), e)
                return
            for lease in taken:
                self._start(chunk[lease.stream], lease)

    async def _take(self, cfg: StreamConfig, *, force: bool) -> None:
        try:
            if force:
                lease: Lease | None = await self.store.take_lease(cfg.name, self.id, self.ttl)
            else:
                lease = await self.store.acquire_lease(cfg.name, self.id, self.ttl)
        except Exception as e:
            log.warning(
                "worker %s: cannot take stream %s: %s", self.id, cfg.name, e,
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
        keeper.writer.lease_check = keeper.may_commit
        self.keepers[cfg.name] = keeper  # renewed by ``_renew_loop``, not by its own task

    # -- releasing ---------------------------------------------------------------------------

    async def _release(self) -> None:
        """Expire the leases still ours, so that other workers take them at once
        (``RENEW_BATCH`` per call on a ``BatchLeases`` store)."""
        store = self.store
        mine = [(n, k) for n, k in self.keepers.items() if not k.superseded]
        if isinstance(store, BatchLeases):
            for start in range(0, len(mine), RENEW_BATCH):
                chunk = mine[start : start + RENEW_BATCH]
                try:
                    await store.renew_leases([(k.lease, False) for _, k in chunk], 0.0)
                except Exception as e:  # they then expire after the ttl
                    log.warning("worker %s: cannot release %d streams: %s", self.id, len(chunk), e)
        else:
            for name, keeper in mine:
                try:
                    await store.renew_lease(keeper.lease, 0.0)
                except Exception as e:  # it then expires after the ttl
                    log.warning("worker %s: cannot release stream %s: %s", self.id, name, e)
        self.keepers.clear()
