"""The dispatcher: order, retries, dead letters, replay, crashes, and running inside `run`."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from longline.api import App
from longline.delivery.dispatcher import Dispatcher
from longline.delivery.redeliver import RedeliveryError, replay
from longline.processors.base import ProcessorError
from longline.testing.provider import Provider
from tests.conftest import events_at_least, make_config, serve_until, stored
from tests.processors.helpers import (
    FAST_RETRY,
    Hook,
    Recorder,
    caught_up,
    config,
    dispatch_until,
    event,
    filled_store,
    python_proc,
)


async def test_processor_raising_then_succeeding_delivers_exactly_in_order(
    tmp_path: Path,
) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 250)
    rec = Recorder(lambda seqs, call: ProcessorError("flaky") if call in (2, 3, 5) else None)
    try:
        d = await dispatch_until(
            config(db, python_proc(batch=50, retry=FAST_RETRY)),
            store,
            caught_up(250),
            {"p": rec},
        )
        assert await store.delivery_cursor("p", "s") == 250
        assert await store.dead_letters() == []
    finally:
        await store.close()
    assert rec.delivered == list(range(1, 251))
    assert rec.batches == [list(range(i, i + 50)) for i in range(1, 251, 50)]
    assert rec.calls == 8 and rec.started and rec.closed
    stats = d.stats["p", "s"]
    assert (stats.delivered, stats.dead, stats.retries, stats.state) == (250, 0, 3, "stopped")


async def test_permanent_failure_is_bisected_to_the_poison_event(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 8)
    poison = {6}
    rec = Recorder(
        lambda seqs, call: ProcessorError("no", permanent=True) if poison & set(seqs) else None
    )
    try:
        await dispatch_until(config(db, python_proc(batch=8)), store, caught_up(8), {"p": rec})
        dead = [(d.seq, d.error, d.attempts) for d in await store.dead_letters("p")]
    finally:
        await store.close()
    assert rec.batches == [[1, 2, 3, 4], [5], [7, 8]]
    assert dead == [(6, "no", 1)]


async def test_unavailable_sink_does_not_spend_the_attempts(tmp_path: Path) -> None:
    """A sink that says it is down keeps the batch (no dead letter however long it lasts);
    the failures that could be the batch's own still count, even between those."""
    db = tmp_path / "d.db"
    store = await filled_store(db, 20)

    def fail(seqs: list[int], call: int) -> ProcessorError | None:
        if call <= 9:  # seqs 1..10: down for 9 calls, over 3x the 3 attempts
            return ProcessorError("connection refused", unavailable=True)
        if seqs[0] == 11:  # seqs 11..20: down, 500, down, 500, down, 500: dead after 3 500s
            return ProcessorError("HTTP 500", unavailable=call % 2 == 1)
        return None

    rec = Recorder(fail)
    retry = {**FAST_RETRY, "max_attempts": 3}
    try:
        d = await dispatch_until(
            config(db, python_proc(batch=10, retry=retry)), store, caught_up(20), {"p": rec}
        )
        dead = [(x.seq, x.error, x.attempts) for x in await store.dead_letters("p")]
    finally:
        await store.close()
    assert rec.batches == [list(range(1, 11))]
    assert dead == [(i, "HTTP 500", 6) for i in range(11, 21)]
    stats = d.stats["p", "s"]
    assert (stats.delivered, stats.dead, stats.retries) == (10, 10, 14)


async def test_lanes_are_independent_per_processor_and_stream(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 30, "a")
    await store.append("b", [event(i) for i in range(1, 13)])
    everything, only_b = Recorder(), Recorder()
    cfg = config(
        db, python_proc("all", batch=7), python_proc("bonly", streams=["b"]), streams=("a", "b")
    )
    try:
        d = await dispatch_until(
            cfg,
            store,
            lambda d: [s.cursor for s in d.stats.values()] == [30, 12, 12],
            {"all": everything, "bonly": only_b},
        )
        cursors = [await store.delivery_cursor(p, s) for p, s in d.stats]
    finally:
        await store.close()
    assert list(d.stats) == [("all", "a"), ("all", "b"), ("bonly", "b")]
    assert cursors == [30, 12, 12]
    assert sorted(everything.delivered) == sorted([*range(1, 31), *range(1, 13)])
    assert only_b.delivered == list(range(1, 13))


async def test_resumes_from_the_stored_cursor_and_follows_new_events(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 10)
    rec = Recorder()
    cfg = config(db, python_proc(batch=4))
    try:
        await store.ack("p", "s", 6)
        d = Dispatcher(cfg, store, poll=0.02, processors={"p": rec})
        task = asyncio.create_task(d.run())
        while d.stats["p", "s"].cursor < 10:
            await asyncio.sleep(0.02)
        await store.append("s", [event(i) for i in range(8, 14)])  # 8..10 are duplicates
        while d.stats["p", "s"].cursor < 13:
            await asyncio.sleep(0.02)
        d.stop()
        await task
    finally:
        await store.close()
    assert rec.delivered == list(range(7, 14))


async def test_stop_during_backoff_acknowledges_nothing(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 5)
    rec = Recorder(lambda seqs, call: ProcessorError("down"))
    slow = {"max_attempts": 8, "initial": "10s", "max": "10s"}
    try:
        d = Dispatcher(config(db, python_proc(retry=slow)), store, processors={"p": rec})
        task = asyncio.create_task(d.run())
        while rec.calls < 1:
            await asyncio.sleep(0.01)
        d.stop()
        await asyncio.wait_for(task, 2)
        assert await store.delivery_cursor("p", "s") == 0
        assert await store.dead_letters() == []
    finally:
        await store.close()


async def test_processor_that_cannot_start_fails_its_lanes(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 1)
    cfg = config(db, {"name": "p", "kind": "python", "target": "tests.nowhere:nothing"})
    try:
        stats = await asyncio.wait_for(Dispatcher(cfg, store).run(), 5)
    finally:
        await store.close()
    assert stats["p", "s"].state == "failed"
    assert stats["p", "s"].last_error is not None
    assert stats["p", "s"].last_error.startswith("cannot import tests.nowhere:nothing")


async def test_replay_redelivers_exactly_the_range_without_moving_the_cursor(
    tmp_path: Path,
) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 250)
    cfg = config(db, python_proc(batch=32))
    try:
        await store.ack("p", "s", 100)
        rec = Recorder()
        done = await replay(cfg, store, "p", "s", 40, 160, instance=rec)
        assert rec.delivered == list(range(40, 161))
        assert max(len(b) for b in rec.batches) == 32
        assert (done.delivered, done.failed) == (121, [])
        tail = Recorder()
        await replay(cfg, store, "p", "s", 245, instance=tail)
        assert tail.delivered == [245, 246, 247, 248, 249, 250]
        assert await store.delivery_cursor("p", "s") == 100
        with pytest.raises(RedeliveryError, match="no processor named 'x'"):
            await replay(cfg, store, "x", "s", 1)
        with pytest.raises(RedeliveryError, match="does not read stream 'zz'"):
            await replay(cfg, store, "p", "zz", 1)
    finally:
        await store.close()


# -- a real process killed mid-delivery ----------------------------------------------------------


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook(delay=0.02)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def start_dispatch(cfg_file: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "--log-level", "ERROR", "dispatch", str(cfg_file),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_sigkill_mid_delivery_then_restart_skips_nothing(hook: Hook, tmp_path: Path) -> None:
    total, batch = 3000, 50
    db = tmp_path / "k.db"
    store = await filled_store(db, total)
    await store.close()
    cfg_file = tmp_path / "k.yaml"
    proc_entry = {"name": "hook", "kind": "webhook", "url": hook.url, "batch": batch}
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{db}",
                "streams": [{"name": "s", "transport": "sse", "url": "http://127.0.0.1:9/x"}],
                "processors": [{**proc_entry, "retry": FAST_RETRY}],
            }
        )
    )
    rng = random.Random(7)
    generations: list[list[list[int]]] = []  # per process: the batches it sent
    for run in range(5):
        seen = len(hook.requests)
        proc = await start_dispatch(cfg_file)
        if run < 4:
            while len(hook.requests) < seen + rng.randint(3, 12):  # mid-delivery
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
        else:
            while hook.delivered[-1:] != [total]:
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)  # finishes (acks) the batch in flight, then exits
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        generations.append([r.seqs for r in hook.requests[seen:]])
    seqs = [s for gen in generations for b in gen for s in b]
    assert sorted(set(seqs)) == list(range(1, total + 1))  # none skipped
    assert total < len(seqs) <= total + 4 * batch  # each kill repeated its in-flight batch
    last = 0
    for gen in generations:
        flat = [s for b in gen for s in b]
        assert flat == list(range(flat[0], flat[-1] + 1))  # in order, no gap within a process
        # Resumes right after the last acknowledged batch: repeats only the one in flight.
        assert last - batch < flat[0] <= last + 1
        last = flat[-1]
    assert last == total
    store = await filled_store(db, 0)
    try:
        assert await store.delivery_cursor("hook", "s") == total
    finally:
        await store.close()


# -- inside `longline run`, with the local provider ----------------------------------------------

DELIVERED: list[dict[str, Any]] = []


async def collect(events: list[dict[str, Any]]) -> None:
    DELIVERED.extend(events)


async def slow(events: list[dict[str, Any]]) -> None:
    await asyncio.sleep(1.0)
    DELIVERED.extend(events)


def lines_stream(provider: Provider, feed: str, total: int) -> dict[str, Any]:
    return {
        "name": feed,
        "transport": "lines",
        "key": "$.id",
        "cursor": "$.id",
        "resume": {"query": "since"},
        "url": provider.url("lines", feed, total=total),
    }


async def test_processors_inside_run_deliver_everything_captured(
    provider: Provider, tmp_path: Path
) -> None:
    DELIVERED.clear()
    n = 1500
    proc_entry = {"name": "p", "kind": "python", "target": f"{__name__}:collect", "batch": 200}
    cfg = make_config(tmp_path / "r.db", lines_stream(provider, "feed", n), processors=[proc_entry])
    await serve_until(cfg, lambda r: len(DELIVERED) >= n)
    assert [e["seq"] for e in DELIVERED] == list(range(1, n + 1))
    assert [e["payload"]["id"] for e in DELIVERED] == list(range(1, n + 1))
    assert {e["stream"] for e in DELIVERED} == {"feed"}
    assert [r[0] for r in await stored(cfg, "feed")] == list(range(1, n + 1))


async def test_slow_processor_does_not_hold_back_capture(
    provider: Provider, tmp_path: Path
) -> None:
    DELIVERED.clear()
    n, batch = 3000, 10
    proc_entry = {"name": "p", "kind": "python", "target": f"{__name__}:slow", "batch": batch}
    feed = lines_stream(provider, "slow", n)
    feed["url"] = provider.url("lines", "slow", total=n, rate=3000)  # about a second of capture
    cfg = make_config(tmp_path / "r.db", feed, processors=[proc_entry])
    lag: list[int] = []

    def captured_all_then_two_batches(r: Any) -> bool:
        if not lag and events_at_least(n)(r):
            lag.append(len(DELIVERED))
        return bool(lag) and len(DELIVERED) >= lag[0] + 2 * batch

    await serve_until(cfg, captured_all_then_two_batches)
    assert [r[0] for r in await stored(cfg, "slow")] == list(range(1, n + 1))
    assert lag[0] < n  # capture completed every event while the processor lagged behind
    assert [e["seq"] for e in DELIVERED] == list(range(1, len(DELIVERED) + 1))


async def test_delivery_only_serve_stops_after_duration(tmp_path: Path) -> None:
    DELIVERED.clear()
    db = tmp_path / "d.db"
    store = await filled_store(db, 30)
    await store.close()
    cfg = config(db, {"name": "p", "kind": "python", "target": f"{__name__}:collect"})
    status = await asyncio.wait_for(App.from_config(cfg).serve(0.5, capture=False), 10)
    assert status.lanes["p", "s"].cursor == 30 and status.lanes["p", "s"].state == "stopped"
    assert [e["seq"] for e in DELIVERED] == list(range(1, 31))
    assert DELIVERED[0]["payload"] == {"id": 1}
