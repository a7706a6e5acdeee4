"""What ``App.status()`` returns: frozen snapshots of the engine's live counters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from longline.delivery.dispatcher import DeliveryStats
from longline.engine.stats import StreamStats

__all__ = ["LaneStatus", "Status", "StreamStatus"]


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One stream: ``state`` is ``not started``, ``connecting``, ``live``, ``backing-off``,
    ``failed`` (with ``reason``) or ``stopped``; counters count since this process started it.
    ``uncommitted``: items a stop could not commit within ``shutdown_timeout`` (not
    checkpointed, so a resumable feed sends them again next time)."""

    name: str
    state: str
    reason: str | None = None
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reconnects: int = 0
    rotations: int = 0
    connections: int = 0
    last_seq: int = 0
    last_event_at: float | None = None
    uncommitted: int = 0

    @classmethod
    def of(cls, name: str, stats: StreamStats) -> StreamStatus:
        return cls(
            name=name,
            state=stats.state,
            reason=stats.reason,
            events=stats.events,
            duplicates=stats.duplicates,
            quarantined=stats.quarantined,
            reconnects=stats.reconnects,
            rotations=stats.rotations,
            connections=stats.connections,
            last_seq=stats.last_seq,
            last_event_at=stats.last_event_at,
            uncommitted=stats.uncommitted,
        )


@dataclass(frozen=True, slots=True)
class LaneStatus:
    """One (processor, stream) lane: ``cursor`` is the last acknowledged seq; ``state`` is
    ``starting``, ``delivering``, ``idle``, ``failed`` or ``stopped``."""

    processor: str
    stream: str
    state: str
    cursor: int = 0
    delivered: int = 0
    dead: int = 0
    retries: int = 0
    last_error: str | None = None

    @classmethod
    def of(cls, processor: str, stream: str, stats: DeliveryStats) -> LaneStatus:
        return cls(
            processor=processor,
            stream=stream,
            state=stats.state,
            cursor=stats.cursor,
            delivered=stats.delivered,
            dead=stats.dead,
            retries=stats.retries,
            last_error=stats.last_error,
        )


@dataclass(frozen=True, slots=True)
class Status:
    """The whole app: ``running`` while ``serve()`` runs; streams by name; lanes by
    ``(processor, stream)``."""

    running: bool
    streams: Mapping[str, StreamStatus] = field(default_factory=dict)
    lanes: Mapping[tuple[str, str], LaneStatus] = field(default_factory=dict)
