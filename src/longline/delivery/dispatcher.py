"""Deliver stored events to processors: the store is the outbox, one cursor per lane.

A lane is one (processor, stream) pair. It reads up to ``batch`` events after its delivery
cursor, delivers them, and acknowledges the last seq in one store transaction together with
any dead letters. Nothing is acknowledged before it was delivered (at-least-once: a crash
re-delivers at most the unacknowledged batch) and a lane never skips an event (per-stream
order). Capture never waits for delivery: the dispatcher only reads events, and its one write
per batch (the ack) is a small transaction.

Failures retry with full-jitter backoff (``retry.initial`` doubling up to ``retry.max``; a
``Retry-After`` is honoured up to ``retry.max``), ``retry.max_attempts`` attempts in all. A
permanent failure of a batch of several events is bisected: each half is delivered on its own
(with retries), so only the event(s) that fail alone become dead letters. A batch that keeps
failing after its attempts is dead-lettered whole: the cause was transient, not one event.
A failure that says the sink itself is unavailable (``ProcessorError.unavailable``: connection
refused, HTTP 503) does not count toward the attempts in the lanes: the batch waits in the
store, retried every ``retry.max`` at most, until the sink is back (an outage must not turn the
backlog into dead letters, delivered later out of order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from longline.config import Config
from longline.core.backoff import Backoff
from longline.core.model import StoredEvent
from longline.core.secrets import redact_stored
from longline.engine.reload import Diff, ReloadResult, diff
from longline.engine.summary import Periodic, dispatch_lines
from longline.processors.base import Processor, ProcessorError
from longline.processors.registry import ProcessorSettings, RetrySettings, build_processor
from longline.stores.base import Outbox

__all__ = ["DeliveryStats", "Dispatcher", "dead_letter_summary", "deliver_batch", "lane_streams"]

log = logging.getLogger(__name__)
Dead = tuple[StoredEvent, str, int]  # (event, last error, attempts)


@dataclass(slots=True)
class DeliveryStats:
    """Counters of one lane, for logs, tests and status."""

    cursor: int = 0
    delivered: int = 0  # events acknowledged as delivered
    dead: int = 0  # events moved to the dead letters
    retries: int = 0
    state: str = "starting"  # starting | delivering | idle | failed | stopped
    last_error: str | None = None


async def deliver_batch(
    processor: Processor,
    stream: str,
    events: Sequence[StoredEvent],
    retry: RetrySettings,
    *,
    stop: asyncio.Event | None = None,
    stats: DeliveryStats | None = None,
    rng: random.Random | None = None,
    name: str = "processor",
    secrets: frozenset[str] = frozenset(),
    wait_for_sink: bool = False,
) -> list[Dead] | None:
    """Deliver ``events`` with retries; the dead ones (empty when all went), None if stopped.

    With ``wait_for_sink`` (the dispatcher's lanes) a failure marked ``unavailable`` is retried
    until it succeeds or ``stop`` is set, without counting toward ``retry.max_attempts``;
    one-off redeliveries (``replay``, ``deadletters --retry``) leave it False and give up.

    Error texts are redacted (``secrets`` and the registered ones) here, before anything
    stores or prints them: a processor's error may quote a token (a command's stderr).
    """
    stats = stats if stats is not None else DeliveryStats()
    backoff = Backoff(retry.initial, retry.max, rng)
    attempts = 0  # every try, for the dead letter's record
    counted = 0  # the tries that count toward max_attempts
    while True:
        attempts += 1
        try:
            await processor.deliver(stream, events)
            return []
        except ProcessorError as exc:
            err = exc
        except Exception as exc:  # a processor bug must not kill the lane
            err = ProcessorError(f"{type(exc).__name__}: {exc}")
        text = stats.last_error = redact_stored(str(err), secrets)
        if err.permanent and len(events) > 1:
            mid = len(events) // 2
            halves: list[Dead] = []
            for half in (events[:mid], events[mid:]):
                dead = await deliver_batch(
                    processor, stream, half, retry, stop=stop, stats=stats, rng=rng, name=name,
                    secrets=secrets, wait_for_sink=wait_for_sink,
                )  # fmt: skip
                if dead is None:
                    return None
                halves += dead
            return halves
        waiting = wait_for_sink and err.unavailable
        counted += 0 if waiting else 1
        if err.permanent or counted >= retry.max_attempts:
            return [(ev, text, attempts) for ev in events]
        delay = backoff.next_delay()
        if err.retry_after is not None:
            delay = max(delay, min(err.retry_after, retry.max))
        stats.retries += 1
        how = (
            "sink unavailable, kept until it is back"
            if waiting
            else f"attempt {counted}/{retry.max_attempts}"
        )
        log.warning(
            "%s: delivery of %s seq %d..%d failed (%s, retry in %.2fs): %s",
            name, stream, events[0].seq, events[-1].seq, how, delay, text,
            extra={"processor": name, "stream": stream},
        )  # fmt: skip
        if await _stopped_within(stop, delay):
            return None


def dead_letter_summary(name: str, stream: str, dead: Sequence[Dead]) -> str:
    """One log line for the dead letters of one batch, however many: a backlog that a
    processor refuses must not flood the log with a line per event."""
    seqs = [ev.seq for ev, _, _ in dead]
    reasons = {err for _, err, _ in dead}
    first_err, attempts = dead[0][1], max(n for _, _, n in dead)
    others = f" (and {len(reasons) - 1} other error(s))" if len(reasons) > 1 else ""
    return (
        f"processor {name} dead-lettered {len(dead)} event(s) of {stream}, "
        f"seq {min(seqs)}..{max(seqs)}, after up to {attempts} attempt(s): {first_err}{others}"
    )


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    """Sleep ``seconds``; True (at once) when ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _some(names: Sequence[str], what: str) -> str:
    """``stream a, b`` or, for many, ``40 streams`` (a start line must not grow unbounded)."""
    if len(names) > 5:
        return f"{len(names)} {what}s"
    return f"{what}{'s' if len(names) != 1 else ''} {', '.join(names)}"


def lane_streams(config: Config, settings: ProcessorSettings) -> list[str]:
    """The streams a processor reads: its ``streams`` list, else every stream of the config."""
    return list(settings.streams) if settings.streams else [s.name for s in config.streams]


class Dispatcher:
    """Runs every lane of ``config.processors`` against an open store until ``stop()``."""

    def __init__(
        self,
        config: Config,
        store: Outbox,
        *,
        poll: float = 0.2,
        drain_timeout: float = 5.0,
        processors: dict[str, Processor] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.poll = poll
        self.drain_timeout = drain_timeout
        self.processors: dict[str, Processor] = dict(processors or {})
        for settings in config.processors:
            if settings.name not in self.processors:
                self.processors[settings.name] = build_processor(settings)
        self.stats: dict[tuple[str, str], DeliveryStats] = {
            (p.name, s): DeliveryStats() for p in config.processors for s in lane_streams(config, p)
        }
        self._rng = rng
        self._stop = asyncio.Event()
        self._stops: dict[str, asyncio.Event] = {}  # per processor, so a reload stops one
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._swapping = False

    def stop(self) -> None:
        """Ask every lane to finish its in-flight batch and end (safe from a signal handler)."""
        self._stop.set()
        for event in self._stops.values():
            event.set()

    async def run(self, duration: float | None = None) -> dict[tuple[str, str], DeliveryStats]:
        """Deliver until ``stop()`` or ``duration``; the store must already be open."""
        for settings in self.config.processors:
            self._launch(settings)
        stopper = asyncio.ensure_future(self._stop.wait())
        # Ends by itself only when no processor could start (each failure is logged).
        ended = asyncio.ensure_future(self._all_ended())
        summary = Periodic(
            self.config.log_summary_interval, lambda b, s: dispatch_lines(self.stats, b, s)
        )
        summary.start()
        try:
            waits: list[asyncio.Future[Any]] = [stopper, ended]
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            self.stop()
            tasks = list(self._tasks.values())
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stopper.cancel()
            ended.cancel()
            for name, processor in self.processors.items():
                await self._close(name, processor)
            await summary.stop()
        return self.stats

    async def reload(self, new: Config) -> ReloadResult:
        """What ``longline dispatch`` does on SIGHUP (see ``apply``)."""
        return ReloadResult(ok=True, processors=await self.apply(new))

    async def apply(self, new: Config) -> Diff:
        """Apply ``new``: start added processors, stop removed ones (the in-flight batch is
        delivered and acknowledged first), restart those whose settings or lanes changed, and
        leave the others delivering."""
        old_lanes = {p.name: (p, lane_streams(self.config, p)) for p in self.config.processors}
        new_lanes = {p.name: (p, lane_streams(new, p)) for p in new.processors}
        changes = diff(old_lanes, new_lanes)
        # Built first: a kind whose library is missing refuses the reload before anything stops.
        built = {
            p.name: build_processor(p)
            for p in new.processors
            if p.name in changes.added + changes.changed
        }
        self._swapping = True
        try:
            for name in changes.removed + changes.changed:
                await self._halt(name)
            self.config = new
            for settings in new.processors:
                if settings.name in built and not self._stop.is_set():
                    self.processors[settings.name] = built[settings.name]
                    for stream in lane_streams(new, settings):
                        self.stats[settings.name, stream] = DeliveryStats()
                    self._launch(settings)
        finally:
            self._swapping = False
            self._changed.set()
        return changes

    def _launch(self, settings: ProcessorSettings) -> None:
        self._stops[settings.name] = asyncio.Event()
        self._tasks[settings.name] = asyncio.create_task(
            self._run_processor(settings), name=f"processor:{settings.name}"
        )
        self._changed.set()

    async def _halt(self, name: str) -> None:
        """Stop one processor's lanes (bounded by ``drain_timeout``), close it, forget it."""
        self._stops[name].set()
        task = self._tasks.pop(name)
        _, pending = await asyncio.wait([task], timeout=self.drain_timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await self._close(name, self.processors.pop(name))
        del self._stops[name]
        for key in [k for k in self.stats if k[0] == name]:
            del self.stats[key]

    async def _close(self, name: str, processor: Processor) -> None:
        try:
            await processor.close()
        except Exception as exc:
            log.warning("closing processor %s failed: %s", name, exc, extra={"processor": name})

    async def _all_ended(self) -> None:
        """Return when every processor task ended by itself (not while a reload swaps them)."""
        while True:
            running = [t for t in self._tasks.values() if not t.done()]
            if not running and not self._swapping:
                return
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait([*running, changed], return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()

    async def _run_processor(self, settings: ProcessorSettings) -> None:
        processor = self.processors[settings.name]
        lanes = lane_streams(self.config, settings)
        stop = self._stops[settings.name]
        if not await self._start(settings, processor, stop):
            for stream in lanes:  # stopped while starting is not a failure
                self.stats[settings.name, stream].state = "stopped" if stop.is_set() else "failed"
            return
        await asyncio.gather(*(self._lane(settings, processor, s, stop) for s in lanes))

    async def _start(
        self, settings: ProcessorSettings, processor: Processor, stop: asyncio.Event
    ) -> bool:
        """Start ``processor``, retrying transient failures; False when it cannot start."""
        backoff = Backoff(settings.retry.initial, settings.retry.max, self._rng)
        while not stop.is_set():
            try:
                await processor.start()
                streams = lane_streams(self.config, settings)
                log.info(
                    "processor %s (%s) started: delivering %s",
                    settings.name, settings.kind, _some(streams, "stream"),
                )  # fmt: skip
                return True
            except Exception as exc:
                permanent = isinstance(exc, ProcessorError) and exc.permanent
                log.error(
                    "processor %s cannot start: %s", settings.name, exc,
                    extra={"processor": settings.name},
                )  # fmt: skip
                for key, stats in self.stats.items():
                    if key[0] == settings.name:
                        stats.last_error = str(exc)
                if permanent:
                    return False
            await _stopped_within(stop, backoff.next_delay())
        return False

    async def _lane(
        self, settings: ProcessorSettings, processor: Processor, stream: str, stop: asyncio.Event
    ) -> None:
        name = settings.name
        stats = self.stats[name, stream]
        backoff = Backoff(self.poll or 0.1, max(settings.retry.max, self.poll or 0.1), self._rng)
        cursor: int | None = None
        while not stop.is_set():
            try:
                if cursor is None:
                    cursor = stats.cursor = await self.store.delivery_cursor(name, stream)
                events = await self.store.read(stream, cursor, settings.batch)
                if not events:
                    stats.state = "idle"
                    await self.store.wait_for_events(self.poll)
                    continue
                stats.state = "delivering"
                dead = await deliver_batch(
                    processor, stream, events, settings.retry, stop=stop, stats=stats,
                    rng=self._rng, name=name, secrets=self.config.secrets, wait_for_sink=True,
                )  # fmt: skip
                if dead is None:
                    break
                await self.store.ack(name, stream, events[-1].seq, dead)
                if dead:
                    log.error(
                        "%s", dead_letter_summary(name, stream, dead),
                        extra={"processor": name, "stream": stream},
                    )  # fmt: skip
                cursor = stats.cursor = events[-1].seq
                stats.delivered += len(events) - len(dead)
                stats.dead += len(dead)
                backoff.reset()
            except Exception as exc:  # the store failed: keep the cursor, try again later
                stats.last_error = str(exc)
                log.warning(
                    "delivery lane %s/%s: %s", name, stream, exc,
                    extra={"processor": name, "stream": stream},
                )  # fmt: skip
                await _stopped_within(stop, backoff.next_delay())
        stats.state = "stopped"
