"""Re-delivery on demand: ``longline replay`` and ``longline deadletters --retry``.

Both deliver stored events again through a processor of the config, outside the dispatcher's
lanes, and neither moves a delivery cursor: the live lane goes on where it was. Replay uses the
processor's retry policy and reports what still failed (it never makes dead letters: the
events were delivered once already). A dead-letter retry makes one attempt per batch (bisected
on a permanent failure, like the dispatcher); delivered ones are dropped, the others keep their
place with the new error and one more attempt counted, to be retried again later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from longline.config import Config
from longline.core.model import DeadLetter, StoredEvent
from longline.delivery.dispatcher import deliver_batch, lane_streams
from longline.processors.base import Processor
from longline.processors.registry import ProcessorSettings, build_processor
from longline.stores.base import DeliveryLog, Outbox

__all__ = ["Redelivered", "RedeliveryError", "replay", "retry_dead_letters", "settings_of"]

_PAGE = 1000


class RedeliveryError(Exception):
    """The request names no such processor or stream."""


@dataclass(slots=True)
class Redelivered:
    """What a re-delivery did: events delivered, and ``(processor, stream, seq, error)`` failed."""

    delivered: int = 0
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)


def settings_of(config: Config, name: str) -> ProcessorSettings:
    """The processor called ``name``; ``RedeliveryError`` when the config has none."""
    for settings in config.processors:
        if settings.name == name:
            return settings
    known = ", ".join(s.name for s in config.processors) or "none"
    raise RedeliveryError(f"no processor named {name!r} in the config (processors: {known})")


async def replay(
    config: Config,
    store: Outbox,
    processor: str,
    stream: str,
    from_seq: int,
    to_seq: int | None = None,
    *,
    instance: Processor | None = None,
) -> Redelivered:
    """Deliver seqs ``from_seq..to_seq`` (to the end when None) of ``stream`` again, in order."""
    settings = settings_of(config, processor)
    if stream not in lane_streams(config, settings):
        raise RedeliveryError(f"processor {processor!r} does not read stream {stream!r}")
    out = Redelivered()
    proc = instance or build_processor(settings)
    await proc.start()
    try:
        after = max(from_seq, 1) - 1
        while to_seq is None or after < to_seq:
            limit = settings.batch if to_seq is None else min(settings.batch, to_seq - after)
            events = [e for e in await store.read(stream, after, limit) if e.seq > after]
            if to_seq is not None:
                events = [e for e in events if e.seq <= to_seq]
            if not events:
                break
            dead = (
                await deliver_batch(
                    proc, stream, events, settings.retry, name=processor, secrets=config.secrets
                )
                or []
            )
            out.delivered += len(events) - len(dead)
            out.failed += [(processor, stream, ev.seq, err) for ev, err, _ in dead]
            after = events[-1].seq
    finally:
        if instance is None:
            await proc.close()
    return out


async def retry_dead_letters(
    config: Config,
    store: Outbox,
    processor: str | None = None,
    *,
    instances: dict[str, Processor] | None = None,
) -> Redelivered:
    """Re-deliver the dead letters (of one processor or all) once; drop those delivered."""
    if processor is not None:
        settings_of(config, processor)
    letters = await all_dead_letters(store, processor)
    groups: dict[tuple[str, str], list[DeadLetter]] = {}
    for letter in letters:
        groups.setdefault((letter.processor, letter.stream), []).append(letter)
    out = Redelivered()
    for (name, stream), group in groups.items():
        try:
            settings = settings_of(config, name)
        except RedeliveryError as exc:
            out.failed += [(name, stream, d.seq, str(exc)) for d in group]
            continue
        given = (instances or {}).get(name)
        proc = given or build_processor(settings)
        await proc.start()
        try:
            await _retry_group(store, proc, settings, stream, group, out, config.secrets)
        finally:
            if given is None:
                await proc.close()
    return out


async def _retry_group(
    store: Outbox,
    proc: Processor,
    settings: ProcessorSettings,
    stream: str,
    group: Sequence[DeadLetter],
    out: Redelivered,
    secrets: frozenset[str],
) -> None:
    by_seq = {d.seq: d for d in group}
    events = await store.read_keys(stream, sorted(by_seq))
    for seq in sorted(set(by_seq) - {e.seq for e in events}):
        out.failed.append((settings.name, stream, seq, "event is no longer stored"))
    once = settings.retry.model_copy(update={"max_attempts": 1})
    for i in range(0, len(events), settings.batch):
        batch: list[StoredEvent] = events[i : i + settings.batch]
        dead = (
            await deliver_batch(proc, stream, batch, once, name=settings.name, secrets=secrets)
            or []
        )
        failed = {ev.seq for ev, _, _ in dead}
        delivered = [by_seq[e.seq].id for e in batch if e.seq not in failed]
        # The ack moves no cursor (seq 0, never backwards); it records the new error.
        if dead:
            await store.ack(settings.name, stream, 0, dead)
        await store.drop_dead_letters(delivered)
        out.delivered += len(delivered)
        out.failed += [(settings.name, stream, ev.seq, err) for ev, err, _ in dead]


async def all_dead_letters(store: DeliveryLog, processor: str | None = None) -> list[DeadLetter]:
    """Every dead letter (of one processor or all), in id order."""
    out: list[DeadLetter] = []
    after = 0
    while page := await store.dead_letters(processor, after, _PAGE):
        out += page
        after = page[-1].id
        if len(page) < _PAGE:
            break
    return out
