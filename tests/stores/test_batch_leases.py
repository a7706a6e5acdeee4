"""Batched lease renewals (``BatchLeases``, SQLite and memory): each lease gets the answer
``renew_lease`` would give it, in one call; worker mode renews what it holds this way."""

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
