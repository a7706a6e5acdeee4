"""``longline.Event``: one stored event, as the Python API hands it to processors and readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from longline.core.model import StoredEvent
from longline.processors.base import parse_payload

__all__ = ["Event", "typed_batch"]


@dataclass(frozen=True, slots=True)
class Event:
    """A committed event of one stream: the fields ``longline events`` prints, typed.

    ``payload`` is the parsed JSON value when the message was JSON, else its text; ``text`` is
    the message exactly as stored. ``event_type`` is the SSE ``event:`` field (None for other
    transports and for SSE messages without one). Consumers deduplicate on ``(stream, seq)``
    or ``key``: delivery is at least once.
    """

    stream: str
    seq: int
    key: str
    cursor: str | None
    received_at: float
    payload: Any
    text: str
    event_type: str | None = None

    @classmethod
    def from_stored(cls, stream: str, event: StoredEvent) -> Event:
        """The API's view of an event read back from the store."""
        return cls(
            stream=stream,
            seq=event.seq,
            key=event.key,
            cursor=event.cursor,
            received_at=event.received_at,
            payload=parse_payload(event.payload),
            text=event.payload,
            event_type=event.event,
        )


def typed_batch(stream: str, events: Sequence[StoredEvent]) -> list[Event]:
    """What a decorated processor receives for one batch (the ``shape`` of its processor)."""
    return [Event.from_stored(stream, ev) for ev in events]
