"""Flag: a set-once asyncio.Event whose waiter list exists only while someone waits."""

from __future__ import annotations

import asyncio

import pytest

from longline.transports.base import Flag


async def settle() -> None:
    """Let every ready task run a few steps."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_new_flag_is_clear_and_holds_no_waiter_list() -> None:
    flag = Flag()
    assert flag.is_set() is False
    assert flag._waiters is None
    assert not hasattr(flag, "__dict__")  # slotted: the point is a small idle footprint


def test_set_is_idempotent_without_a_loop() -> None:
    flag = Flag()
    flag.set()
    flag.set()
    assert flag.is_set() is True
    assert flag._waiters is None


async def test_wait_on_a_set_flag_returns_at_once() -> None:
    flag = Flag()
    flag.set()
    coro = flag.wait()
    with pytest.raises(StopIteration) as stop:
        coro.send(None)  # completes without suspending
    assert stop.value.value is True
    assert flag._waiters is None


async def test_set_wakes_one_waiter() -> None:
    flag = Flag()
    task = asyncio.create_task(flag.wait())
    await settle()
    assert not task.done()
    assert flag._waiters is not None and len(flag._waiters) == 1
    flag.set()
    assert await asyncio.wait_for(task, 5) is True
    assert flag._waiters is None


async def test_set_wakes_every_waiter() -> None:
    flag = Flag()
    tasks = [asyncio.create_task(flag.wait()) for _ in range(4)]
    await settle()
    assert not any(t.done() for t in tasks)
    assert flag._waiters is not None and len(flag._waiters) == 4
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [True, True, True, True]
    assert flag.is_set()
    assert flag._waiters is None


async def test_cancelled_waiter_is_removed() -> None:
    flag = Flag()
    stay = asyncio.create_task(flag.wait())
    leave = asyncio.create_task(flag.wait())
    await settle()
    leave.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leave
    assert flag._waiters is not None and len(flag._waiters) == 1
    flag.set()
    assert await asyncio.wait_for(stay, 5) is True


async def test_all_waiters_cancelled_leaves_an_empty_list_and_set_still_works() -> None:
    flag = Flag()
    task = asyncio.create_task(flag.wait())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flag._waiters == []
    flag.set()
    assert flag.is_set()
    assert flag._waiters is None
    assert await asyncio.wait_for(flag.wait(), 5) is True


async def test_waiter_cancelled_after_set_does_not_break_set() -> None:
    flag = Flag()
    task = asyncio.create_task(flag.wait())
    await settle()
    flag.set()  # resolves the future; the task has not resumed yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flag.is_set()
    assert flag._waiters is None


async def test_wait_for_timeout_then_set() -> None:
    flag = Flag()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(flag.wait(), 0.01)
    assert flag._waiters == []  # the timed-out waiter removed itself
    flag.set()
    assert await asyncio.wait_for(flag.wait(), 5) is True


async def test_set_from_a_callback_wakes_waiters() -> None:
    flag = Flag()
    asyncio.get_running_loop().call_soon(flag.set)
    assert await asyncio.wait_for(flag.wait(), 5) is True
