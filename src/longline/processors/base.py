"""The Processor protocol: what every processor kind (python, webhook, redis, ...) implements.

A processor receives batches of stored events of one stream, in ``seq`` order, at least once.
It signals failure by raising ``ProcessorError``; ``permanent=True`` sends the batch's events
to the dead letters at once (e.g. a webhook answering 400), otherwise the dispatcher retries
with backoff; ``unavailable=True`` says the sink itself is down, so the retries never run out.
Each kind lives in its own module with its config model (``kind: Literal[...]``) and a
``build(config) -> Processor`` function, registered as a ``longline.processors`` entry point
(``processors/registry.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from longline.core.model import StoredEvent


class ProcessorError(Exception):
    """A delivery failed. ``permanent`` failures are not retried.

    ``retry_after`` (seconds) is a lower bound for the next attempt's delay, when the far end
    said when to come back (an HTTP 429 ``Retry-After``, a throttling response).

    ``unavailable`` means the sink could not be reached or said it is not taking anything now
    (connection refused, HTTP 503 or 429, NATS without a JetStream responder): the batch is not
    at fault, so the dispatcher keeps it waiting in the store instead of spending its
    ``max_attempts`` and dead-lettering it. A sink down for an hour then receives every event,
    in order, once it is back.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        unavailable: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.unavailable = unavailable and not permanent


class Processor(Protocol):
    """Delivers batches of stored events somewhere."""

    async def start(self) -> None:
        """Connect (called once before the first delivery)."""

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        """Deliver ``events`` (same stream, increasing seq) or raise ``ProcessorError``."""

    async def close(self) -> None:
        """Release connections."""


def event_dict(stream: str, event: StoredEvent) -> dict[str, Any]:
    """The shape every kind delivers an event in (the same as ``longline events`` prints, plus
    ``stream``): consumers deduplicate on ``(stream, seq)`` or ``key``."""
    return {
        "stream": stream,
        "seq": event.seq,
        "key": event.key,
        "cursor": event.cursor,
        "received_at": event.received_at,
        "payload": parse_payload(event.payload),
        "event": event.event,
    }


def event_dicts(stream: str, events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """``event_dict`` of each event, in order."""
    return [event_dict(stream, ev) for ev in events]


def parse_payload(text: str) -> Any:
    """The parsed JSON value when the stored text is JSON, else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
