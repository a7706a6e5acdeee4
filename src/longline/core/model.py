"""The values that flow from the wire to the store.

Kept as small slotted dataclasses: one is made per message on the hot path, so they carry only
what the store needs. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Message:
    """One framed message, before it is keyed.

    ``data`` is the message body as received (UTF-8 bytes for SSE and lines; the frame payload
    for WebSocket). ``event``, ``id`` and ``own_id`` are set only by the SSE framer: ``id`` is the
    last event ID in force when the event was dispatched (None when empty), which persists across
    events and reconnects per WHATWG; ``own_id`` says the event had an ``id`` field of its own
    (so ``id`` names this event, not an earlier one: the default SSE key uses it).
    """

    data: bytes
    event: str | None = None
    id: str | None = None
    own_id: bool = False


@dataclass(slots=True, frozen=True)
class Keyed:
    """A message a provider session already keyed (``longline.sessions``): stored as is.

    Sessions key from the envelope while storing only the inner event, which the stream's
    own key and cursor settings cannot express; the keyer passes these through untouched.
    """

    key: str
    payload: str
    cursor: str | None = None
    event: str | None = None


@dataclass(slots=True, frozen=True)
class Oversized:
    """A message that was larger than ``max_message_size``; its body was discarded as it arrived."""

    size: int
    head: bytes = b""


@dataclass(slots=True, frozen=True)
class Event:
    """A keyed message, ready to be appended to the store.

    ``payload`` is the message text exactly as received (decoded UTF-8); readers parse it as JSON
    when it is JSON. ``cursor`` is what the checkpoint advances to once this event is committed.
    """

    key: str
    payload: str
    cursor: str | None
    received_at: float
    event: str | None = None


@dataclass(slots=True, frozen=True)
class Quarantined:
    """Something that arrived but cannot be stored as an event, with the reason why."""

    reason: str
    raw: bytes
    received_at: float


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """An event as read back from the store, with its per-stream sequence number."""

    seq: int
    key: str
    cursor: str | None
    received_at: float
    payload: str
    event: str | None = None
    # The lease epoch of the append that stored it (None: appended without one): which owner
    # committed it, for audits of worker mode.
    epoch: int | None = None


@dataclass(slots=True, frozen=True)
class StoredQuarantine:
    """A quarantined item as read back from the store."""

    id: int
    reason: str
    raw: bytes
    received_at: float


@dataclass(slots=True, frozen=True)
class AppendResult:
    """What ``Store.append`` did: how many events were new, how many were already stored."""

    new: int
    duplicates: int
    last_seq: int
    # True when the append carried an epoch older than the stream's lease: the events were
    # inserted (idempotently) but the checkpoint was not moved. The writer is superseded.
    fenced: bool = False


@dataclass(slots=True, frozen=True)
class Totals:
    """A stream's counters over the store's whole life, kept by the store itself and updated
    in the same transaction as the writes they count, so a restart or a SIGKILL keeps them."""

    events: int = 0  # stored
    duplicates: int = 0  # dropped: their key was already stored
    quarantined: int = 0
    reconnects: int = 0


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """An event a processor gave up on after its retries, with the last error."""

    id: int
    processor: str
    stream: str
    seq: int
    key: str
    error: str
    attempts: int
    failed_at: float


@dataclass(slots=True, frozen=True)
class Lease:
    """Ownership of a stream by one worker or invocation, with a fencing epoch.

    Taking a lease increments ``epoch``; the store refuses checkpoint writes that carry an older
    epoch, so a superseded owner can never move the checkpoint backwards. ``live`` is set by the
    owner once its first batch is committed: the predecessor's signal that it may stop.
    """

    stream: str
    owner: str
    epoch: int
    expires_at: float
    live: bool = False
