"""StreamWriter (group commit) against a small in-memory store that records every call.

Windows are short (20 ms) and every wait is bounded by a generous timeout; the assertions are
on exact event lists and batch boundaries, never on how long something took.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

import longline.engine.writer as writer_module
from longline.core.keys import EventBatch, Keyer
from longline.core.model import AppendResult, Event, Message, Oversized, Quarantined
from longline.engine.stats import StreamStats
from longline.engine.writer import LINGER_FLOOR, StoreSignal, StreamWriter
from longline.stores.base import Store
from longline.transports.base import Connection

NOW = 1000.0  # time.time() as the writer sees it (patched), so events compare exactly
WINDOW = 0.02
LONG = 5.0  # the bound on every wait; a healthy run needs a fraction of it


class StoreDown(Exception):
    """What the fake store raises while it is "down"."""


@dataclass
class Append:
    stream: str
    events: list[Event]
    checkpoint: str | None
    epoch: int | None
    batch_type: type


@dataclass
class FakeStore:
    """Records append/quarantine calls; dedups by key like a real store."""

    appends: list[Append] = field(default_factory=list)
    quarantines: list[tuple[str, list[Quarantined]]] = field(default_factory=list)
    fail_appends: int = 0  # raise StoreDown on this many next append calls
    fail_quarantines: int = 0
    append_attempts: int = 0
    delay: float = 0.0  # seconds each append takes
    quarantine_delay: float = 0.0  # seconds each quarantine call takes
    gate: asyncio.Event | None = None  # when set, appends wait for it
    fenced: bool = False
    seen: set[str] = field(default_factory=set)
    seq: int = 0
    reconnects: int = 0

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        self.append_attempts += 1
        self.reconnects += reconnects
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_appends:
            self.fail_appends -= 1
            raise StoreDown("database is locked")
        self.appends.append(Append(stream, list(events), checkpoint, epoch, type(events)))
        new = 0
        for ev in events:
            if ev.key not in self.seen:
                self.seen.add(ev.key)
                new += 1
                self.seq += 1
        return AppendResult(new, len(events) - new, self.seq, self.fenced)

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        if self.quarantine_delay:
            await asyncio.sleep(self.quarantine_delay)
        if self.fail_quarantines:
            self.fail_quarantines -= 1
            raise StoreDown("disk full")
        self.quarantines.append((stream, list(items)))

    @property
    def events(self) -> list[Event]:
        return [ev for call in self.appends for ev in call.events]

    @property
    def batch_sizes(self) -> list[int]:
        return [len(call.events) for call in self.appends]


def conn() -> Connection:
    """What push needs of a connection: its counters."""
    return cast(Connection, SimpleNamespace(pushed=0, first_ticket=None))


def body(i: int) -> bytes:
    return orjson.dumps({"id": i})


def ev(i: int) -> Event:
    """The event the writer makes of ``body(i)`` (key and cursor ``$.id``)."""
    return Event(str(i), body(i).decode(), str(i), NOW, None)


def refused(raw: bytes) -> Quarantined:
    """The quarantine entry for a line the keyer refuses (its reason as the keyer words it)."""
    out = Keyer("$.id", "$.id", "lines").make(Message(raw), NOW)
    assert isinstance(out, Quarantined)
    return out


def writer_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("writer:")]


async def until(check: Any, timeout: float = LONG) -> None:
    """Poll ``check()`` until true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.002)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "time", SimpleNamespace(time=lambda: NOW))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def make(store: FakeStore) -> AsyncIterator[Any]:
    """Build started writers on ``store``; close them at the end of the test."""
    made: list[StreamWriter] = []

    def build(start: bool = True, **kw: Any) -> StreamWriter:
        kw.setdefault("batch_max", 5)
        kw.setdefault("batch_window", WINDOW)
        kw.setdefault("max_message_size", 64)
        w = StreamWriter(
            "s", cast(Store, store), Keyer("$.id", "$.id", "lines"), StreamStats(), **kw
        )
        if start:
            w.start()
        made.append(w)
        return w

    yield build
    store.gate = None
    store.fail_appends = store.fail_quarantines = 0
    for w in made:
        await asyncio.wait_for(w.close(), LONG)


# --- the flusher's life cycle -----------------------------------------------------------------


async def test_flusher_task_starts_only_with_the_first_message(make: Any) -> None:
    w = make()
    await asyncio.sleep(0)
    assert writer_tasks() == []
    w.push([], conn())
    assert writer_tasks() == []  # nothing was pushed
    w.push([body(1)], conn())
    assert len(writer_tasks()) == 1
    w.push([body(2)], conn())
    assert len(writer_tasks()) == 1


async def test_push_before_start_waits_for_start(make: Any, store: FakeStore) -> None:
    w = make(start=False)
    w.push([body(1), body(2)], conn())
    await asyncio.sleep(2 * WINDOW)
    assert writer_tasks() == []
    assert store.appends == []
    w.start()
    await asyncio.wait_for(w.wait_committed(2), LONG)
    assert store.events == [ev(1), ev(2)]


async def test_a_quarantine_only_push_starts_the_flusher(make: Any, store: FakeStore) -> None:
    w = make()
    w.push([b"not json"], conn())
    assert len(writer_tasks()) == 1
    await until(lambda: store.quarantines)
    assert store.quarantines == [("s", [refused(b"not json")])]
    assert store.quarantines[0][1][0].reason.startswith("invalid JSON: ")
    assert store.appends == []


async def test_close_commits_the_rest_and_ends_the_task(make: Any, store: FakeStore) -> None:
    w = make(batch_window=60.0, batch_max=4)  # only close can make these commit in time
    w.push([body(i) for i in range(1, 11)], conn())
    await until(lambda: w.committed_ticket == 8)  # two full batches; 9-10 now linger
    await asyncio.wait_for(w.close(), LONG)
    assert store.events == [ev(i) for i in range(1, 11)]
    assert store.batch_sizes == [4, 4, 2]
    assert w.committed_ticket == 10
    assert writer_tasks() == []
    assert w.stats.events == 10


async def test_close_without_messages(make: Any, store: FakeStore) -> None:
    w = make()
    await asyncio.wait_for(w.close(), LONG)
    assert store.appends == [] and store.quarantines == []
    assert writer_tasks() == []


# --- batching -------------------------------------------------------------------------------


async def test_batches_never_exceed_batch_max(make: Any, store: FakeStore) -> None:
    w = make(batch_max=5)
    c = conn()
    w.push([body(i) for i in range(1, 24)], c)  # 23 at once
    w.push([body(i) for i in range(24, 27)], c)
    await asyncio.wait_for(w.flush(), LONG)
    for start in range(27, 40, 4):
        w.push([body(i) for i in range(start, start + 4)], c)
        await asyncio.sleep(0)
    await asyncio.wait_for(w.flush(), LONG)
    assert store.events == [ev(i) for i in range(1, 43)]
    assert max(store.batch_sizes) <= 5
    assert store.batch_sizes[:5] == [5, 5, 5, 5, 5]  # a full buffer commits full batches
    assert all(call.batch_type is EventBatch for call in store.appends)
    assert all(call.stream == "s" for call in store.appends)
    assert c.pushed == 42


async def test_a_batch_that_is_not_full_commits_after_its_linger(
    make: Any, store: FakeStore
) -> None:
    w = make(batch_max=100)
    w.push([body(1), body(2), body(3)], conn())
    await asyncio.wait_for(w.wait_committed(3), LONG)
    assert store.appends[0].events == [ev(1), ev(2), ev(3)]
    assert store.batch_sizes == [3]
    assert w.committed_ticket == 3


async def test_linger_groups_pushes_that_arrive_within_it(make: Any, store: FakeStore) -> None:
    # The floor of the linger is 0.1 * 1 s; the pushes below are microseconds apart.
    w = make(batch_max=100, batch_window=1.0)
    w.push([body(1)], conn())
    for _ in range(3):
        await asyncio.sleep(0)  # the flusher is now lingering
    w.push([body(2)], conn())
    w.push([body(3)], conn())
    await asyncio.wait_for(w.wait_committed(3), LONG)
    assert store.batch_sizes == [3]
    assert store.events == [ev(1), ev(2), ev(3)]


async def test_a_batch_that_fills_while_lingering_commits_at_once(
    make: Any, store: FakeStore
) -> None:
    w = make(batch_max=3, batch_window=60.0)  # a linger that would outlast the test
    w.push([body(1)], conn())
    for _ in range(3):
        await asyncio.sleep(0)
    w.push([body(2), body(3)], conn())  # now full: wakes the flusher
    await asyncio.wait_for(w.wait_committed(3), LONG)
    assert store.batch_sizes == [3]


def spy_lingers(w: StreamWriter, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the timeout of every timed sleep of ``w``'s flusher (its lingers). The writer
    is slotted, so the spy goes on the class, for this instance only."""
    lingers: list[float] = []
    real = StreamWriter._sleep

    async def spy(self: StreamWriter, timeout: float | None) -> None:
        if self is w and timeout is not None:
            lingers.append(timeout)
        await real(self, timeout)

    monkeypatch.setattr(StreamWriter, "_sleep", spy)
    return lingers


async def test_linger_adapts_to_the_commit_time_within_its_bounds(
    make: Any, store: FakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make(batch_max=100)
    lingers = spy_lingers(w, monkeypatch)
    n = 0

    async def one_batch() -> None:
        nonlocal n
        n += 1
        w.push([body(n)], conn())
        await asyncio.wait_for(w.wait_committed(n), LONG)

    await one_batch()  # no commit yet: the floor
    assert lingers == [pytest.approx(LINGER_FLOOR * WINDOW)]
    store.delay = 3 * WINDOW  # a slow store: the linger is capped at the window
    await one_batch()
    await one_batch()
    assert lingers[2] == WINDOW
    store.delay = WINDOW / 2  # in between: about as long as the last commit took
    await one_batch()
    await one_batch()
    assert WINDOW * 0.4 <= lingers[4] <= WINDOW
    store.delay = 0.0  # a fast store: back to the floor
    await one_batch()
    await one_batch()
    assert lingers[6] <= WINDOW / 4  # the floor, give or take a scheduling hiccup
    assert all(LINGER_FLOOR * WINDOW * 0.999 <= x <= WINDOW for x in lingers)
    assert store.events == [ev(i) for i in range(1, 8)]
    assert store.batch_sizes == [1] * 7


# --- flush and tickets ----------------------------------------------------------------------


async def test_flush_commits_everything_pushed(make: Any, store: FakeStore) -> None:
    w = make(batch_max=4, batch_window=60.0)
    w.push([body(i) for i in range(1, 7)], conn())
    w.push([body(7)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert store.events == [ev(i) for i in range(1, 8)]
    assert store.batch_sizes == [4, 3]
    assert w.committed_ticket == 7
    w.push([body(8)], conn())
    await asyncio.wait_for(w.flush(), LONG)  # urgent again after going idle
    assert store.events == [ev(i) for i in range(1, 9)]


async def test_flush_with_nothing_pushed_returns(make: Any, store: FakeStore) -> None:
    w = make()
    await asyncio.wait_for(w.flush(), LONG)
    assert store.appends == []


async def test_flush_also_writes_pending_quarantined_items(make: Any, store: FakeStore) -> None:
    store.quarantine_delay = 0.01  # a real store does I/O here
    w = make(batch_window=60.0)
    w.push([body(1)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    w.push([b"\xff"], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert store.quarantines == [
        ("s", [Quarantined("invalid UTF-8 at byte 0: invalid start byte", b"\xff", NOW)])
    ]


async def test_tickets_count_events_per_push_and_connection(make: Any, store: FakeStore) -> None:
    w = make(batch_max=100, batch_window=60.0)
    a, b = conn(), conn()
    w.push([body(1), b"bad", body(2)], a)  # tickets 1, 2; the bad line takes none
    w.push([b"bad"], b)  # only quarantined: no ticket
    assert b.first_ticket is None
    w.push([body(3)], b)
    w.push([body(4)], a)
    assert (a.first_ticket, b.first_ticket) == (1, 3)
    assert (a.pushed, b.pushed) == (4, 2)
    assert w.committed_ticket == 0
    await asyncio.wait_for(w.wait_committed(0), LONG)  # nothing to wait for
    waiter = asyncio.create_task(w.wait_committed(5))
    await asyncio.wait_for(w.flush(), LONG)
    assert w.committed_ticket == 4
    assert not waiter.done()  # ticket 5 was never pushed
    w.push([body(5)], a)
    await asyncio.wait_for(w.flush(), LONG)
    assert waiter.done()
    assert store.events == [ev(i) for i in range(1, 6)]


async def test_wait_committed_follows_partial_commits(make: Any, store: FakeStore) -> None:
    store.gate = asyncio.Event()
    w = make(batch_max=2)
    w.push([body(i) for i in range(1, 6)], conn())
    waiters = {t: asyncio.create_task(w.wait_committed(t)) for t in (1, 2, 3, 5)}
    await until(lambda: store.append_attempts == 1)
    assert not any(t.done() for t in waiters.values())
    store.gate.set()
    await asyncio.wait_for(waiters[2], LONG)
    assert waiters[1].done()
    await asyncio.wait_for(asyncio.gather(*waiters.values()), LONG)
    assert store.batch_sizes == [2, 2, 1]
    assert w.committed_ticket == 5


# --- backpressure ---------------------------------------------------------------------------


async def test_backpressure_until_a_commit_frees_room(make: Any, store: FakeStore) -> None:
    store.gate = asyncio.Event()
    w = make(batch_max=2, max_pending=4)
    c = conn()
    w.push([body(1), body(2)], c)
    await until(lambda: store.append_attempts == 1)  # batch 1-2 is stuck in the store
    assert not w.backlogged
    w.push([body(3), body(4), body(5)], c)
    assert not w.backlogged  # 3 buffered
    w.push([body(6)], c)
    assert w.backlogged  # 4 buffered: at max_pending
    drained = asyncio.create_task(w.drained())
    await asyncio.sleep(3 * WINDOW)
    assert not drained.done()
    store.gate.set()
    await asyncio.wait_for(drained, LONG)
    assert not w.backlogged
    await asyncio.wait_for(w.flush(), LONG)
    assert store.events == [ev(i) for i in range(1, 7)]
    assert max(store.batch_sizes) <= 2


async def test_drained_returns_at_once_when_not_backlogged(make: Any) -> None:
    w = make(batch_max=2, max_pending=4)
    w.push([body(1)], conn())
    await asyncio.wait_for(w.drained(), LONG)


async def test_default_max_pending_is_eight_batches(make: Any) -> None:
    assert make(batch_max=3).max_pending == 24


# --- store failures, quarantine, stats, epoch -------------------------------------------------


async def test_a_store_that_fails_twice_loses_nothing(make: Any, store: FakeStore) -> None:
    store.fail_appends = 2
    w = make(batch_max=3)
    w.push([body(1), body(2), body(3)], conn())
    await until(lambda: store.append_attempts >= 1)
    w.push([body(4), body(5)], conn())  # arrives while the store is down
    await asyncio.wait_for(w.flush(), LONG)
    assert store.append_attempts == 4  # 2 failures, then batch 1-3, then batch 4-5
    assert store.events == [ev(i) for i in range(1, 6)]
    assert store.batch_sizes == [3, 2]
    assert w.stats.events == 5
    assert w.committed_ticket == 5


async def test_quarantine_retries_too(make: Any, store: FakeStore) -> None:
    store.fail_quarantines = 2
    w = make()
    w.push([b"{", body(1)], conn())
    await asyncio.wait_for(w.wait_committed(1), LONG)
    assert [q.raw for _, items in store.quarantines for q in items] == [b"{"]
    assert w.stats.quarantined == 1
    assert store.events == [ev(1)]


async def test_quarantined_items_are_written_and_counted(make: Any, store: FakeStore) -> None:
    w = make(max_message_size=64)
    w.push(
        [
            body(1),
            b"not json",
            Oversized(100, b"head"),
            Message(b'{"other": 1}'),
            b"\xc3",
            body(2),
        ],
        conn(),
    )
    await asyncio.wait_for(w.wait_committed(2), LONG)
    assert store.events == [ev(1), ev(2)]
    assert store.quarantines == [
        (
            "s",
            [
                refused(b"not json"),
                Quarantined("message of 100 bytes exceeds max_message_size 64", b"head", NOW),
                Quarantined("key path $.id not found", b'{"other": 1}', NOW),
                Quarantined("invalid UTF-8 at byte 0: unexpected end of data", b"\xc3", NOW),
            ],
        )
    ]
    assert w.stats.quarantined == 4
    assert w.stats.events == 2


async def test_stats_follow_the_store_result(make: Any, store: FakeStore) -> None:
    w = make()
    w.push([body(1), body(2), body(1)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    stats = w.stats
    assert (stats.events, stats.duplicates, stats.last_seq) == (2, 1, 2)
    assert stats.last_event_at == NOW
    w.push([body(2)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert (stats.events, stats.duplicates, stats.last_seq) == (2, 2, 2)


@pytest.mark.parametrize("epoch", [None, 7])
async def test_epoch_is_passed_to_append(make: Any, store: FakeStore, epoch: int | None) -> None:
    w = make(epoch=epoch)
    w.push([body(1)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert [(a.epoch, a.checkpoint) for a in store.appends] == [(epoch, None)]
    assert w.fenced is False


async def test_a_fenced_result_sets_fenced(make: Any, store: FakeStore) -> None:
    w = make(epoch=3)
    w.push([body(1)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert w.fenced is False
    store.fenced = True
    w.push([body(2)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert w.fenced is True
    assert store.events == [ev(1), ev(2)]  # fencing does not drop the events
    store.fenced = False
    w.push([body(3)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert w.fenced is True  # superseded for good
    assert [a.epoch for a in store.appends] == [3, 3, 3]


async def test_a_lease_check_saying_no_drops_the_batch_and_never_acks_it(
    make: Any, store: FakeStore
) -> None:
    """Worker mode: once a newer owner is live the old one commits nothing, and what it did
    not store is never acknowledged to the provider (which then sends it to the new owner)."""
    w = make(epoch=3)
    allowed = True

    async def check() -> bool:
        return allowed

    w.lease_check = check
    acked: list[int] = []
    w.push([body(1)], conn())
    w.after_commit(w.last_ticket, lambda: acked.append(1))
    await asyncio.wait_for(w.flush(), LONG)
    allowed = False
    w.push([body(2), body(3)], conn())
    w.after_commit(w.last_ticket, lambda: acked.append(3))
    await asyncio.wait_for(w.flush(), LONG)  # flushing does not hang on what it dropped
    assert (acked, store.events, w.dropped, w.fenced) == ([1], [ev(1)], 2, True)
    assert [a.epoch for a in store.appends] == [3]


# --- a bounded close ---------------------------------------------------------------------------


async def test_a_failing_store_shows_in_the_reason_until_it_recovers(
    make: Any, store: FakeStore
) -> None:
    store.fail_appends = 2
    w = make(batch_max=3)
    w.push([body(1), body(2), body(3)], conn())
    await until(lambda: store.append_attempts >= 1)
    await until(lambda: w.stats.reason is not None)
    assert w.stats.reason == "store write failed: database is locked"
    assert w.store_error == w.stats.reason
    await asyncio.wait_for(w.flush(), LONG)
    assert (w.stats.reason, w.store_error) == (None, None)
    assert store.events == [ev(1), ev(2), ev(3)]


async def test_a_store_failing_past_its_patience_ends_the_writer_without_storing(
    make: Any, store: FakeStore
) -> None:
    store.fail_appends = 10**6
    gave_up: list[tuple[str, str]] = []
    w = make(batch_max=3, patience=0.3, on_give_up=lambda s, r: gave_up.append((s, r)))
    w.push([body(1), body(2), body(3)], conn())
    flushing = asyncio.create_task(w.flush())
    await until(lambda: bool(gave_up))
    (stream, reason), = gave_up
    assert stream == "s" and reason == w.gave_up == w.stats.reason
    assert re.fullmatch(
        r"store writes failed for 0\.[3-9]s \(store_patience 0\.3s\), giving up: "
        r"database is locked",
        reason,
    )
    with pytest.raises(RuntimeError, match="store writes are failing"):
        await asyncio.wait_for(flushing, LONG)
    assert writer_tasks() == []  # ended, not crashed
    attempts = store.append_attempts
    w.push([body(4)], conn())  # what still arrives stays uncommitted; no retry starts again
    await asyncio.sleep(0.05)
    assert store.append_attempts == attempts and store.events == []
    assert await w.close(LONG) == 4


async def test_a_store_that_recovers_within_its_patience_loses_nothing(
    make: Any, store: FakeStore
) -> None:
    store.fail_appends = 3  # 0.1 + 0.2 + 0.4 s of backoff: more than the patience is not
    w = make(batch_max=3, patience=5.0, on_give_up=lambda s, r: pytest.fail(r))
    w.push([body(1), body(2), body(3)], conn())
    await asyncio.wait_for(w.flush(), LONG)
    assert store.events == [ev(1), ev(2), ev(3)] and w.gave_up is None


class Denied(Exception):
    permanent = True  # as StoreError(..., permanent=True) says it


async def test_a_permanent_refusal_ends_the_writer_after_three_tries(
    make: Any, store: FakeStore
) -> None:
    async def deny(*args: Any, **kw: Any) -> AppendResult:
        store.append_attempts += 1
        raise Denied("AccessDeniedException: not authorized")

    store.append = deny  # type: ignore[method-assign]
    gave_up: list[str] = []
    w = make(batch_max=3, on_give_up=lambda s, r: gave_up.append(r))  # no patience: for ever
    w.push([body(1), body(2)], conn())
    await until(lambda: bool(gave_up))
    assert store.append_attempts == 3
    assert gave_up == ["store refused 3 times, giving up: AccessDeniedException: not authorized"]
    assert await w.close(LONG) == 2


async def test_a_store_answering_again_wakes_a_backed_off_writer(
    make: Any, store: FakeStore
) -> None:
    """Found by the reliability campaign: after PostgreSQL came back, a writer slept out its
    6.4 s backoff while the others committed, and a live feed's rotation stalled on it."""
    store.fail_appends = 10**6
    signal = StoreSignal()
    w = make(batch_max=3, store_signal=signal)
    w.push([body(1), body(2), body(3)], conn())
    await until(lambda: store.append_attempts >= 5 and signal._waiting == 1)  # waiting 1.6 s
    store.fail_appends = 0
    loop = asyncio.get_running_loop()
    woken = loop.time()
    signal.ok()  # another writer (or a status save) got through
    await asyncio.wait_for(w.flush(), LONG)
    assert loop.time() - woken < 1.0
    assert store.events == [ev(1), ev(2), ev(3)]


async def test_close_gives_up_at_its_timeout_and_counts_what_is_left(
    make: Any, store: FakeStore
) -> None:
    store.fail_appends = 10**6  # refuses every write
    w = make(batch_max=3)
    w.push([body(1), body(2), body(3)], conn())  # the batch under way
    await until(lambda: store.append_attempts >= 1)
    w.push([body(4), body(5), b"{"], conn())  # buffered: two events, one quarantined item
    flushing = asyncio.create_task(w.flush())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await w.close(0.3) == 6
    assert 0.3 <= loop.time() - started < 0.3 + 0.5
    assert w.uncommitted == 6 and store.events == []
    assert writer_tasks() == []
    with pytest.raises(RuntimeError, match="store writes are failing"):
        await asyncio.wait_for(flushing, LONG)
    attempts = store.append_attempts
    w.push([body(6)], conn())  # after close: buffered, no flusher starts again
    await asyncio.sleep(0.05)
    assert store.append_attempts == attempts and w.uncommitted == 7


async def test_close_of_a_store_that_hangs_is_bounded(make: Any, store: FakeStore) -> None:
    store.gate = asyncio.Event()  # appends wait forever
    w = make(batch_max=2)
    w.push([body(1), body(2), body(3)], conn())
    await until(lambda: store.append_attempts >= 1)
    assert await asyncio.wait_for(w.close(0.1), LONG) == 3
    assert store.events == []


async def test_close_commits_in_time_and_returns_zero(make: Any, store: FakeStore) -> None:
    store.delay = 0.02
    w = make(batch_max=2)
    w.push([body(i) for i in range(1, 8)], conn())
    assert await w.close(LONG) == 0
    assert store.events == [ev(i) for i in range(1, 8)]


async def test_release_lets_backlogged_producers_go(make: Any, store: FakeStore) -> None:
    store.gate = asyncio.Event()
    w = make(batch_max=1, max_pending=2)
    w.push([body(1), body(2), body(3)], conn())
    waiting = asyncio.create_task(w.drained())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    w.release()
    await asyncio.wait_for(waiting, LONG)
    store.gate.set()
