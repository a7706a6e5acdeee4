"""The store contract: the promises every store keeps, built-in or plugin, as a pytest class.

Subclass ``StoreConformance`` in a test module (name it ``Test...``) and give it a ``store_url``
fixture returning the URL of an empty store of your kind; every test then opens it with
``open_store`` (through your ``longline.stores`` entry point), several times where the test
needs several processes sharing one store. longline runs it on SQLite, PostgreSQL, DynamoDB and
the in-memory store, and on the example plugin's store. The crash test runs
``crash_writer.py`` in a subprocess that SIGKILL interrupts mid-append: override the
``crash_events`` fixture with a smaller count for a slow backend, or ``None`` for a store that
ends with its process. (Needs pytest and pytest-asyncio in ``asyncio_mode = "auto"``.)
Backend-specific behaviour (DynamoDB's transaction parts, PostgreSQL's dropped connections)
belongs in the backend's own tests.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest

import longline
from longline.core.model import (
    AppendResult,
    DeadLetter,
    Event,
    Lease,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)
from longline.stores import DeliveryLog, EventLog, LeaseTable, Store, StoreError, open_store
from longline.stores.base import BatchStatus

__all__ = ["CRASH_WRITER", "StoreConformance", "StoreFactory", "ev", "keys_of", "read_all"]

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")

StoreFactory = Callable[[], Awaitable[Store]]
"""Opens another instance on the same store, as another process sharing one database would."""


def ev(key: str, cursor: str | None = None, payload: str | None = None, at: float = 1.5) -> Event:
    """An event keyed ``key`` whose payload names it (``{"k":"KEY"}``) unless given."""
    return Event(key=key, payload=payload or f'{{"k":"{key}"}}', cursor=cursor, received_at=at)


async def read_all(store: Store, stream: str) -> list[StoredEvent]:
    """Every stored event of ``stream``, read in pages of 97 (paging is part of the contract)."""
    out: list[StoredEvent] = []
    while batch := await store.read(stream, out[-1].seq if out else 0, 97):
        out.extend(batch)
    return out


def keys_of(events: list[StoredEvent]) -> list[str]:
    """The events' keys, in their order."""
    return [e.key for e in events]


async def _state(url: str) -> tuple[list[tuple[int, str]], str | None, int]:
    """The stored events, the checkpoint and the events total of the crash stream."""
    async with open_store(url) as store:
        events = [(e.seq, e.key) for e in await read_all(store, "crash")]
        total = (await store.totals()).get("crash", Totals()).events
        return events, await store.checkpoint("crash"), total


class StoreConformance:
    """Subclass as ``TestMyStore(StoreConformance)`` and define a ``store_url`` fixture."""

    @pytest.fixture
    def crash_events(self) -> int | None:
        """Events the crash test appends in all (None: skip it, the store is not durable)."""
        return 4000

    @pytest.fixture
    async def make_store(self, store_url: str) -> AsyncIterator[StoreFactory]:
        """Open another instance on the same store (several processes sharing one database)."""
        opened: list[Store] = []

        async def make() -> Store:
            store = open_store(store_url, create_tables=True)
            await store.open()
            opened.append(store)
            return store

        yield make
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, make_store: StoreFactory) -> Store:
        """An open instance of the store under test."""
        return await make_store()

    # -- append ----------------------------------------------------------------------------------

    async def test_the_store_plays_every_role(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert all(isinstance(store, role) for role in (EventLog, DeliveryLog, LeaseTable))

    async def test_async_with_opens_and_closes(self, store_url: str) -> None:
        async with open_store(store_url, create_tables=True) as store:
            assert await store.append("s", [ev("a", "c-a")]) == AppendResult(1, 0, 1)
        with pytest.raises(StoreError, match="not open"):
            await store.checkpoint("s")
        async with store:  # the same store opens again, and finds what it committed
            assert (await store.last_seq("s"), await store.checkpoint("s")) == (1, "c-a")
        with pytest.raises(RuntimeError, match="inside"):
            async with open_store(store_url) as store:
                raise RuntimeError("inside")
        with pytest.raises(StoreError, match="not open"):
            await store.read("s")

    async def test_append_assigns_consecutive_seqs_per_stream(self, store: Store) -> None:
        first = [ev("a", "c1", at=10.25), Event("b", "text é ☃", None, 11.0, event="message")]
        assert await store.append("s", first) == AppendResult(new=2, duplicates=0, last_seq=2)
        assert await store.append("s", [ev("c", at=12.0)]) == AppendResult(1, 0, 3)
        assert await store.read("s") == [
            StoredEvent(1, "a", "c1", 10.25, '{"k":"a"}', None),
            StoredEvent(2, "b", None, 11.0, "text é ☃", "message"),
            StoredEvent(3, "c", None, 12.0, '{"k":"c"}', None),
        ]
        assert await store.append("other", [ev("a")]) == AppendResult(1, 0, 1)
        assert await store.read("missing") == []
        assert (await store.last_seq("s"), await store.last_seq("missing")) == (3, 0)

    async def test_append_is_idempotent_on_stream_and_key(self, store: Store) -> None:
        batch = [ev("a", payload="first"), ev("b"), ev("a", payload="again"), ev("c"), ev("b")]
        assert await store.append("s", batch) == AppendResult(new=3, duplicates=2, last_seq=3)
        assert await store.append("s", [ev("b"), ev("d"), ev("a")]) == AppendResult(1, 2, 4)
        assert await store.append("s", [ev("d"), ev("c")]) == AppendResult(0, 2, 4)
        assert await store.append("s", []) == AppendResult(0, 0, 4)
        stored = await store.read("s")
        assert [(e.seq, e.key) for e in stored] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
        assert stored[0].payload == "first"

    async def test_large_batch_keeps_order_and_gapless_seqs(self, store: Store) -> None:
        # Over 100 events: DynamoDB splits such a batch into several transactions.
        keys = [f"key-{i:04d}" for i in range(110)]
        assert await store.append("s", [ev(k, k) for k in keys]) == AppendResult(110, 0, 110)
        mixed = [ev(k, k) for k in [*keys[80:], *(f"new-{i}" for i in range(60))]]
        assert await store.append("s", mixed) == AppendResult(60, 30, 170)
        stored = await read_all(store, "s")
        assert [e.seq for e in stored] == list(range(1, 171))
        assert keys_of(stored) == keys + [f"new-{i}" for i in range(60)]
        assert await store.checkpoint("s") == "new-59"

    async def test_checkpoint_is_cursor_of_last_new_event_with_one(self, store: Store) -> None:
        assert await store.checkpoint("s") is None
        await store.append("s", [ev("a", "c-a"), ev("b", "c-b"), ev("c")])
        assert await store.checkpoint("s") == "c-b"
        await store.append("s", [ev("d")])  # no cursor anywhere: unchanged
        assert await store.checkpoint("s") == "c-b"
        assert await store.checkpoint("other") is None

    async def test_duplicates_never_move_the_checkpoint(self, store: Store) -> None:
        await store.append("s", [ev("a", "c-a"), ev("b", "c-b")])
        # A lagging overlapping connection re-delivers "a" with its older cursor.
        assert await store.append("s", [ev("a", "c-a")]) == AppendResult(0, 1, 2)
        assert await store.checkpoint("s") == "c-b"
        await store.append("s", [ev("b", "c-b"), ev("c", "c-c"), ev("a", "c-a")])
        assert await store.checkpoint("s") == "c-c"

    async def test_explicit_checkpoint_wins_even_without_new_events(self, store: Store) -> None:
        await store.append("s", [ev("a", "c-a")], checkpoint="explicit")
        assert await store.checkpoint("s") == "explicit"
        assert await store.append("s", [ev("a", "c-a")], checkpoint="later") == AppendResult(
            0, 1, 1
        )
        assert await store.checkpoint("s") == "later"
        await store.append("s", [], checkpoint="empty-batch")
        assert await store.checkpoint("s") == "empty-batch"

    async def test_failed_append_leaves_neither_events_nor_checkpoint(self, store: Store) -> None:
        await store.append("s", [ev("a", "c-a")])
        bad = Event("z", cast(str, None), "c-z", 1.0)  # payload may not be null
        with pytest.raises((StoreError, TypeError, AttributeError, ValueError)):
            await store.append("s", [ev("b", "c-b"), ev("c", "c-c"), bad], checkpoint="x")
        assert keys_of(await store.read("s")) == ["a"]
        assert await store.checkpoint("s") == "c-a"
        assert await store.append("s", [ev("b", "c-b")]) == AppendResult(1, 0, 2)

    async def test_concurrent_appenders_on_one_stream_never_double_or_gap(
        self,
        make_store: StoreFactory,
    ) -> None:
        a, b = await make_store(), await make_store()
        keys = [f"k{i}" for i in range(160)]
        rng = random.Random(11)
        orders = [rng.sample(keys, len(keys)) for _ in range(2)]

        async def feed(store: Store, order: list[str]) -> list[AppendResult]:
            return [
                await store.append("s", [ev(k, k) for k in order[i : i + 10]])
                for i in range(0, len(order), 10)
            ]

        results = await asyncio.gather(feed(a, orders[0]), feed(b, orders[1]))
        stored = await read_all(a, "s")
        assert [e.seq for e in stored] == list(range(1, 161))
        assert sorted(keys_of(stored)) == sorted(keys)
        flat = [r for rs in results for r in rs]
        assert sum(r.new for r in flat) == 160
        assert sum(r.duplicates for r in flat) == 160

    async def test_read_ranges_limits_and_order(self, store: Store) -> None:
        await store.append("s", [ev(f"k{i}") for i in range(1, 11)])
        assert keys_of(await store.read("s", 0, 3)) == ["k1", "k2", "k3"]
        assert [e.seq for e in await store.read("s", 7, 100)] == [8, 9, 10]
        assert await store.read("s", 10, 5) == []
        assert await store.read("s", 0, 0) == []
        assert [e.seq for e in await store.read_keys("s", [9, 2, 4, 2, 42])] == [2, 4, 9]
        assert await store.read_keys("s", []) == []

    # -- quarantine and status -----------------------------------------------------------------

    async def test_quarantine_round_trip(self, store: Store) -> None:
        items = [
            Quarantined("too large", b"\x00\xff" * 10, 1.25),
            Quarantined("no key", b"{}", 2.5),
        ]
        await store.quarantine("s", items)
        await store.quarantine("s", [Quarantined("bad json", b"{", 3.0)])
        await store.quarantine("other", [Quarantined("x", b"y", 4.0)])
        got = await store.read_quarantine("s")
        assert [(q.reason, q.raw, q.received_at) for q in got] == [
            ("too large", b"\x00\xff" * 10, 1.25),
            ("no key", b"{}", 2.5),
            ("bad json", b"{", 3.0),
        ]
        assert got[0].id < got[1].id < got[2].id
        assert await store.read_quarantine("s", got[0].id, 1) == [got[1]]
        assert await store.read_quarantine("s", got[2].id) == []
        assert [q.reason for q in await store.read_quarantine("other")] == ["x"]
        assert all(isinstance(q, StoredQuarantine) for q in got)

    async def test_status_round_trip(self, store: Store) -> None:
        assert await store.get_status() == {}
        await store.put_status("a", {"state": "running", "events": 3, "nested": {"x": [1, 2]}})
        await store.put_status("b", {"state": "stopped"})
        await store.put_status("a", {"state": "stopped", "events": 4})
        assert await store.get_status() == {
            "a": {"state": "stopped", "events": 4},
            "b": {"state": "stopped"},
        }
        with pytest.raises(StoreError, match="JSON"):
            await store.put_status("a", {"bad": object()})

    async def test_statuses_saved_together(self, store: Store) -> None:
        """``BatchStatus`` (where a store has it): many statuses in one call, the same as one
        ``put_status`` each; one that is not JSON saves none of them."""
        if not isinstance(store, BatchStatus):
            pytest.skip("this store saves statuses one by one (no BatchStatus)")
        await store.put_status("a", {"state": "live"})
        many = {f"s{i}": {"state": "live", "events": i} for i in range(1500)}
        await store.put_statuses({**many, "a": {"state": "stopped"}})
        assert await store.get_status() == {**many, "a": {"state": "stopped"}}
        with pytest.raises(StoreError, match="JSON"):
            await store.put_statuses({"a": {"state": "live"}, "b": {"bad": object()}})
        saved = await store.get_status()
        assert saved["a"] == {"state": "stopped"} and "b" not in saved

    # -- totals ----------------------------------------------------------------------------------

    async def test_totals_count_each_commit_and_survive_reopening(
        self, make_store: StoreFactory
    ) -> None:
        store = await make_store()
        assert await store.totals() == {}
        await store.append("s", [ev("a", "c-a"), ev("b"), ev("a")])  # a repeated within the batch
        await store.append("s", [ev("b"), ev("c")], reconnects=2)
        await store.append("s", [], reconnects=1)  # a reconnect with no event after it
        await store.quarantine(
            "s", [Quarantined("no key", b"{}", 1.0), Quarantined("x", b"y", 2.0)]
        )
        await store.append("t", [ev("a")], epoch=None)
        await store.quarantine("u", [Quarantined("bad json", b"{", 3.0)])
        bad = Event("z", cast(str, None), "c-z", 1.0)  # a failed append counts nothing
        with pytest.raises((StoreError, TypeError, AttributeError, ValueError)):
            await store.append("s", [ev("d"), bad], reconnects=5)
        expected = {
            "s": Totals(events=3, duplicates=2, quarantined=2, reconnects=3),
            "t": Totals(events=1),
            "u": Totals(quarantined=1),
        }
        assert await store.totals() == expected
        await store.close()
        again = await make_store()  # another process, later
        assert await again.totals() == expected
        await again.append("s", [ev("c"), ev("e")], reconnects=1)
        assert (await again.totals())["s"] == Totals(4, 3, 2, 4)

    async def test_a_fenced_append_still_counts_what_it_stored(self, store: Store) -> None:
        old = await store.take_lease("s", "w1", 60)
        await store.take_lease("s", "w2", 60)
        assert (await store.append("s", [ev("a", "c-a")], epoch=old.epoch, reconnects=1)).fenced
        assert (await store.append("s", [ev("a", "c-a")], "x", epoch=old.epoch)).fenced
        assert (await store.totals())["s"] == Totals(events=1, duplicates=1, reconnects=1)

    # -- delivery --------------------------------------------------------------------------------

    async def test_delivery_cursor_only_moves_forward(self, store: Store) -> None:
        assert await store.delivery_cursor("p", "s") == 0
        await store.ack("p", "s", 5)
        await store.ack("p", "s", 3)  # a late ack never moves it back
        assert await store.delivery_cursor("p", "s") == 5
        await store.ack("p", "s", 9)
        assert (await store.delivery_cursor("p", "s"), await store.delivery_cursor("q", "s")) == (
            9,
            0,
        )
        assert await store.delivery_cursor("p", "other") == 0

    async def test_dead_letters_commit_with_the_ack(self, store: Store) -> None:
        await store.append("s", [ev(f"k{i}") for i in range(1, 6)])
        events = await store.read("s")
        await store.ack("p", "s", 2, [(events[1], "HTTP 500", 3)])
        await store.ack("q", "s", 4, [(events[2], "boom", 1), (events[3], "bang", 2)])
        letters = await store.dead_letters()
        assert [(d.processor, d.seq, d.key, d.error, d.attempts) for d in letters] == [
            ("p", 2, "k2", "HTTP 500", 3),
            ("q", 3, "k3", "boom", 1),
            ("q", 4, "k4", "bang", 2),
        ]
        assert all(isinstance(d, DeadLetter) and d.stream == "s" for d in letters)
        assert letters[0].id < letters[1].id < letters[2].id
        assert await store.delivery_cursor("q", "s") == 4
        assert [d.seq for d in await store.dead_letters("q")] == [3, 4]
        assert [d.seq for d in await store.dead_letters(None, letters[0].id, 1)] == [3]
        assert await store.dead_letters("nobody") == []

    async def test_failing_again_updates_the_dead_letter(self, store: Store) -> None:
        await store.append("s", [ev("k1")])
        (event,) = await store.read("s")
        await store.ack("p", "s", 1, [(event, "first", 2)])
        (before,) = await store.dead_letters("p")
        await store.ack("p", "s", 1, [(event, "second", 3)])
        (after,) = await store.dead_letters("p")
        assert (after.id, after.error, after.attempts) == (before.id, "second", 5)

    async def test_drop_dead_letters(self, store: Store) -> None:
        await store.append("s", [ev("k1"), ev("k2"), ev("k3")])
        events = await store.read("s")
        await store.ack("p", "s", 3, [(e, "x", 1) for e in events])
        ids = [d.id for d in await store.dead_letters()]
        await store.drop_dead_letters([ids[0], ids[2]])
        await store.drop_dead_letters([])
        assert [d.seq for d in await store.dead_letters()] == [2]

    async def test_wait_for_events_returns_by_its_timeout(self, store: Store) -> None:
        await asyncio.wait_for(store.wait_for_events(0.05), 10)
        await store.append("s", [ev("a")])
        await asyncio.wait_for(store.wait_for_events(0.05), 10)

    # -- leases ----------------------------------------------------------------------------------

    async def test_leases_take_acquire_renew(self, store: Store) -> None:
        assert await store.get_lease("s") is None
        first = await store.take_lease("s", "w1", 60)
        assert (first.owner, first.epoch, first.live) == ("w1", 1, False)
        assert await store.acquire_lease("s", "w2", 60) is None  # held and not expired
        renewed = await store.renew_lease(first, 60, live=True)
        assert (renewed.epoch, renewed.live) == (1, True)
        second = await store.take_lease("s", "w2", 60)  # a handoff successor
        assert (second.owner, second.epoch, second.live) == ("w2", 2, False)
        assert await store.renew_lease(first, 60) == await store.get_lease("s")
        expired = await store.take_lease("t", "w1", -1)
        got = await store.acquire_lease("t", "w3", 60)
        assert got is not None and (got.owner, got.epoch) == ("w3", expired.epoch + 1)
        assert isinstance(got, Lease)
        await store.append("u", [ev("a", "c-a")])  # a stream without a lease is not listed
        assert await store.leases() == {"s": second, "t": got}

    async def test_an_older_epoch_stores_events_but_not_the_checkpoint(self, store: Store) -> None:
        old = await store.take_lease("s", "w1", 60)
        assert await store.append("s", [ev("a", "c-a")], epoch=old.epoch) == AppendResult(1, 0, 1)
        new = await store.take_lease("s", "w2", 60)
        fenced = await store.append("s", [ev("b", "c-b")], epoch=old.epoch)
        assert fenced == AppendResult(1, 0, 2, fenced=True)
        assert await store.checkpoint("s") == "c-a"
        assert (await store.append("s", [], "x", epoch=old.epoch)).fenced
        assert await store.append("s", [ev("c", "c-c")], epoch=new.epoch) == AppendResult(1, 0, 3)
        assert await store.checkpoint("s") == "c-c"
        await store.append("s", [ev("c", "c-c"), ev("d", "c-d")], epoch=old.epoch)  # c: a repeat
        await store.append("s", [ev("e")])  # outside worker mode: no epoch
        # Each event keeps the epoch of the append that stored it: who committed what.
        stored = [(e.key, e.epoch) for e in await store.read("s")]
        assert stored == [("a", 1), ("b", 1), ("c", 2), ("d", 1), ("e", None)]
        assert [e.epoch for e in await store.read_keys("s", [2, 3])] == [1, 2]

    async def test_sigkill_while_appending_leaves_a_consistent_store(
        self, store_url: str, crash_events: int | None
    ) -> None:
        """Kill a process appending in a loop at random moments, then finish the run: every key is
        stored once, seqs are 1..n, and the checkpoint is the key of the last stored event."""
        if crash_events is None:
            pytest.skip("the store does not outlive its process")
        total = crash_events
        src = str(Path(longline.__file__).parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        seed = random.randrange(1 << 32)
        rng = random.Random(seed)
        printed: list[int] = []
        killed, last = 0, 0
        for round_ in range(8):
            cmd = [sys.executable, str(CRASH_WRITER), store_url, str(total), "10", "15"]
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, env=env)
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
            head = b""
            if round_ < 3:  # kill it in the middle of a random append
                for _ in range(rng.randint(1, 4)):
                    head += await asyncio.wait_for(proc.stdout.readline(), 30)
                await asyncio.sleep(rng.uniform(0, 0.01))
                proc.send_signal(signal.SIGKILL)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            lines = (head + out).decode().split("\n")[:-1]  # a line cut by the kill: not committed
            killed += proc.returncode == -signal.SIGKILL
            printed += [int(line) for line in lines if line != "done"]
            events, cp, counted = await _state(store_url)
            last = len(events)
            assert counted == last, seed  # the total committed with the events it counts
            assert events == [(i, f"k{i}") for i in range(1, last + 1)], seed
            assert cp == (f"k{last}" if last else None), seed
            assert all(seq <= last for seq in printed), seed  # every reported commit survived
            if lines[-1:] == ["done"]:
                break
        assert killed >= 1, seed
        assert last == total
