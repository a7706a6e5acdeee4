"""Keep a stream's lease renewed and notice when a newer owner supersedes it.

A lease is taken with the next epoch; the writer commits under that epoch and the store
refuses checkpoint writes from older ones. The keeper renews the lease every ``ttl / 3`` and
marks it *live* once this owner's first batch is committed, which is what tells a predecessor
that it may stop.
"""

from __future__ import annotations

import asyncio
import logging

from longline.core.model import Lease
from longline.engine.stats import StreamStats
from longline.engine.writer import StreamWriter
from longline.stores.base import LeaseTable

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews one stream's lease and reports whether it was superseded.

    ``writer`` is the stream's writer, committing under ``lease.epoch``: its counters say when
    this owner went live, and a fenced append of it means a newer owner took over.
    """

    def __init__(self, store: LeaseTable, lease: Lease, ttl: float, writer: StreamWriter) -> None:
        self.store = store
        self.lease = lease
        self.ttl = ttl
        self.writer = writer
        self.stats: StreamStats = writer.stats
        # Set by a worker once its connection has been live a while: an idle feed commits
        # nothing, yet its new owner captures and the predecessor may stop.
        self.ready = False
        self.current: Lease = lease
        self._task: asyncio.Task[None] | None = None
        # Loop time until which the lease is surely ours: ttl after the start of the last
        # renewal that kept it (monotonic: a SIGSTOP or a paused VM does not stop it).
        self.valid_until = asyncio.get_running_loop().time() + ttl
        self.handed_over = False  # ``may_commit`` said no: it never says yes again

    @property
    def superseded(self) -> bool:
        """A newer epoch owns the stream (seen by renewal or by a fenced append)."""
        return self.writer.fenced or self.current.epoch > self.lease.epoch

    @property
    def successor_live(self) -> bool:
        """The newer owner has committed events."""
        return self.current.epoch > self.lease.epoch and self.current.live

    def start(self) -> None:
        """Start renewing in the background."""
        self._task = asyncio.create_task(self._run(), name=f"lease:{self.lease.stream}")

    async def stop(self) -> None:
        """Stop renewing (the lease then expires unless a successor took it)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def may_commit(self) -> bool:
        """Whether the writer may commit its next batch: no once a newer owner is live.

        Before its successor goes live an old owner keeps committing (make-before-break: the
        store inserts its events but refuses its checkpoint). Once the successor is live the
        old owner commits nothing more. A process paused past its lease (SIGSTOP, a paused
        VM) cannot know what happened meanwhile, nor trust what it saw before: once its own
        lease would have expired, each commit first asks the store (a renewal, or the
        successor's lease) instead of storing under a lease it may have lost.
        """
        if self.handed_over:
            return False
        if asyncio.get_running_loop().time() >= self.valid_until:
            await self.refresh()  # once superseded: reads the successor's lease again
        # For good: a later epoch not yet live (the stream moving on again) must not let this
        # owner commit after batches it dropped (the campaign saw it store events out of order).
        self.handed_over = self.successor_live
        return not self.handed_over

    async def refresh(self) -> None:
        """Renew now (or, once superseded, read the successor's lease)."""
        if self.superseded:
            self.current = await self.store.get_lease(self.lease.stream) or self.current
            return
        lease, live = self.renewal()
        sent = asyncio.get_running_loop().time()
        self.renewed(await self.store.renew_lease(lease, self.ttl, live=live), sent)

    def renewal(self) -> tuple[Lease, bool]:
        """What to renew: the lease, and whether this owner is live (it captures)."""
        return self.lease, self.ready or self.stats.events + self.stats.duplicates > 0

    def renewed(self, current: Lease, sent: float) -> None:
        """Take in the answer to a renewal sent at loop time ``sent``: the lease in force."""
        self.current = current
        if current.epoch == self.lease.epoch:
            self.valid_until = max(self.valid_until, sent + self.ttl)
        if current.epoch > self.lease.epoch:
            log.info(
                "stream %s: lease taken over (epoch %d -> %d)",
                self.lease.stream,
                self.lease.epoch,
                self.current.epoch,
                extra={"stream": self.lease.stream},
            )

    async def _run(self) -> None:
        period = max(self.ttl / 3, 0.05)
        while True:
            try:
                await self.refresh()
            except Exception as e:  # a store hiccup must not end the invocation
                log.warning(
                    "stream %s: lease renewal failed: %s", self.lease.stream, e,
                    extra={"stream": self.lease.stream},
                )  # fmt: skip
            # Poll fast while a handoff is under way: until our first commit is marked live
            # (a predecessor waits for it), and once superseded (we wait for the successor).
            handing_over = self.superseded or not self.current.live
            await asyncio.sleep(min(period, 0.2) if handing_over else period)
