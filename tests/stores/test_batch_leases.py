"""Batched lease renewals and takes (``BatchLeases``, SQLite and memory): each lease gets the
answer ``renew_lease`` or ``acquire_lease`` would give it, in one call; worker mode renews
what it holds and takes free streams this way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from longline.stores import open_store
from longline.stores.base import BatchLeases, Store
from longline.stores.memory import forget


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'leases.db'}"
    else:
        url = f"memory://batch-{uuid.uuid4().hex}"
    async with open_store(url, create_tables=True) as opened:
        yield opened
    if request.param == "memory":
        forget(url.removeprefix("memory://"))


async def test_each_lease_gets_what_a_single_renewal_would_answer(store: Store) -> None:
    assert isinstance(store, BatchLeases)
    mine = [await store.take_lease(s, "w1", 60) for s in ("a", "b", "c")]
    newer = await store.take_lease("b", "w2", 60)  # b moved on: its renewal must say so
    before = {s: (await store.get_lease(s)) for s in ("a", "c")}
    current = await store.renew_leases([(mine[0], True), (mine[1], True), (mine[2], False)], 300)
    assert [(x.stream, x.owner, x.epoch, x.live) for x in current] == [
        ("a", "w1", 1, True),
        ("b", "w2", 2, False),
        ("c", "w1", 1, False),
    ]
    assert current[1] == newer == await store.get_lease("b")  # not extended, not marked live
    for lease in (current[0], current[2]):
        old = before[lease.stream]
        assert old is not None and lease.expires_at > old.expires_at  # extended
        assert await store.get_lease(lease.stream) == lease
    assert await store.renew_leases([], 60) == []


async def test_free_streams_taken_together_as_one_by_one(store: Store) -> None:
    """``acquire_leases``: the free and the expired streams are taken (next epoch), a stream
    another worker holds is left out, in one call."""
    assert isinstance(store, BatchLeases)
    await store.take_lease("held", "w2", 60)
    await store.take_lease("expired", "w2", 0.0)
    taken = await store.acquire_leases(["new", "held", "expired"], "w1", 60)
    assert [(x.stream, x.owner, x.epoch, x.live) for x in taken] == [
        ("new", "w1", 1, False),
        ("expired", "w1", 2, False),
    ]
    for lease in taken:
        assert await store.get_lease(lease.stream) == lease
    held = await store.get_lease("held")
    assert held is not None and held.owner == "w2" and held.epoch == 1
    assert await store.acquire_leases([], "w1", 60) == []
