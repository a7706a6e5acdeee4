"""Read a store back after a scenario and compare it with what the provider published.

Resumable feeds: the stored ids must be exactly 1..N, each once, each payload byte-identical to
what the provider sent. Live-only feeds: nothing doubled, payloads identical, and no event
missing that was published while a proxied connection was up and healthy (the proxy's history
says when) — what was published while no connection was up is legitimately missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from longline.stores import open_store
from longline.testing.faultproxy import ConnectionRecord
from longline.testing.provider_feeds import FeedClock, event_bytes
from reliability.harness import SIZE

OPEN_MARGIN = 0.3  # a new connection's first events may predate its first byte
CUT_MARGIN = 0.5  # what was in flight when a fault hit a connection may be lost with it
CLOSE_MARGIN = 0.1  # a clean close (rotation, the provider's lifetime) loses nothing in flight


@dataclass
class Audit:
    """One stream's figures."""

    stream: str
    produced: int = 0
    stored: int = 0
    lost: int = 0
    doubled: int = 0
    corrupted: int = 0
    notes: list[str] = field(default_factory=list)

    def __add__(self, other: Audit) -> Audit:
        return Audit(
            "+",
            self.produced + other.produced,
            self.stored + other.stored,
            self.lost + other.lost,
            self.doubled + other.doubled,
            self.corrupted + other.corrupted,
            self.notes + other.notes,
        )


@dataclass
class Session:
    """One `longline run` process's life, and the last event id a live stream had stored when
    it ended (read once the process was gone)."""

    start: float
    end: float
    last_id: dict[str, int] = field(default_factory=dict)


async def read_stream(url: str, stream: str) -> tuple[list[tuple[int, bytes]], int]:
    """``([(id, payload)], unreadable)`` of every stored event in seq order; a seq gap or an
    unparsable payload counts as unreadable (corrupted)."""
    store = open_store(url)
    await store.open()
    rows: list[tuple[int, bytes]] = []
    bad = 0
    after = 0
    try:
        while batch := await store.read(stream, after, 5000):
            for ev in batch:
                if ev.seq != after + 1:
                    bad += 1
                after = ev.seq
                try:
                    rows.append((int(orjson.loads(ev.payload)["id"]), ev.payload.encode()))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    bad += 1
    finally:
        await store.close()
    return rows, bad


async def last_id(url: str, stream: str) -> int:
    """The highest event id among the stream's last stored events (0: none)."""
    store = open_store(url)
    await store.open()
    try:
        count = (await store.totals()).get(stream)
        n = count.events if count else 0
        tail = await store.read(stream, max(0, n - 50), 50) if n else []
    finally:
        await store.close()
    return max((int(orjson.loads(ev.payload)["id"]) for ev in tail), default=0)


def _common(a: Audit, feed: str, rows: list[tuple[int, bytes]], bad: int,
            size: int = SIZE) -> set[int]:
    ids = [i for i, _ in rows]
    have = set(ids)
    a.stored = len(rows)
    a.doubled = len(ids) - len(have)
    a.corrupted = bad + sum(1 for i, p in rows if p != event_bytes(feed, i, size))
    return have


async def audit_resumable(url: str, stream: str, feed: str, total: int,
                          size: int = SIZE) -> Audit:
    """Exactly events 1..total, once each, byte for byte (``size``: the feed's event size)."""
    rows, bad = await read_stream(url, stream)
    a = Audit(stream, produced=total)
    have = _common(a, feed, rows, bad, size)
    missing = sorted(set(range(1, total + 1)) - have)
    a.lost = len(missing)
    if missing:
        a.notes.append(f"{stream}: missing {_ranges(missing)}")
    extra = len(have - set(range(1, total + 1)))
    if extra:
        a.corrupted += extra
        a.notes.append(f"{stream}: {extra} ids outside 1..{total}")
    ids = [i for i, _ in rows]
    if ids != sorted(ids):
        a.notes.append(f"{stream}: stored out of order")
    return a


def required_ids(
    clock: FeedClock, records: list[ConnectionRecord], sessions: list[Session], stream: str
) -> set[int]:
    """Ids published while some connection of the stream was up and healthy."""
    need: set[int] = set()
    for rec in records:
        if rec.first_byte is None:
            continue
        session = next((s for s in sessions if s.start <= rec.opened <= s.end), None)
        if session is None:
            continue
        last = session.last_id.get(stream, 0)
        lo = clock.published(rec.first_byte + OPEN_MARGIN) + 1
        healthy = rec.healthy_until()
        if rec.impaired is None and (healthy is None or healthy >= session.end - 0.05):
            hi = last  # up until the process ended: everything up to what it had stored
        else:
            assert healthy is not None
            margin = CUT_MARGIN if rec.impaired is not None else CLOSE_MARGIN
            hi = min(last, clock.published(healthy - margin))
        need.update(range(lo, hi + 1))
    return need


async def audit_live(
    url: str,
    stream: str,
    feed: str,
    clock: FeedClock,
    records: list[ConnectionRecord],
    sessions: list[Session],
    end: float,
) -> Audit:
    rows, bad = await read_stream(url, stream)
    a = Audit(stream, produced=clock.published(end))
    have = _common(a, feed, rows, bad)
    need = required_ids(clock, records, sessions, stream)
    missing = sorted(need - have)
    a.lost = len(missing)
    if missing:
        a.notes.append(f"{stream}: missing while a connection was up: {_ranges(missing)}")
    a.notes.append(
        f"{stream}: {len(need)} events published while a connection was up, all required; "
        f"{max(0, a.produced - a.stored)} published while none was (not deliverable)"
    )
    return a


def _ranges(ids: list[int], limit: int = 8) -> str:
    out: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    more = f" (+{len(out) - limit} more)" if len(out) > limit else ""
    return ", ".join(out[:limit]) + more
