"""Fixtures that give the same store contract suite a SQLite, a PostgreSQL, a DynamoDB and an
in-memory store.

- SQLite: a file under ``tmp_path``.
- PostgreSQL and DynamoDB (moto): the service fixtures of ``tests/services.py``.
- Memory: a ``memory://NAME`` of its own, forgotten afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from longline.stores import Store, open_store
from longline.stores.memory import forget

DURABLE = ("sqlite", "postgresql", "dynamodb")  # what outlives the process
BACKENDS = (*DURABLE, "memory")


# -- the parametrized store ----------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store of ``backend`` (the service fixtures are only asked for when
    their backend is, so a missing PostgreSQL never skips the SQLite cases)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'contract.db'}"
    elif backend == "memory":
        name = f"contract-{uuid.uuid4().hex}"
        yield f"memory://{name}"
        forget(name)
    else:
        fixture = "pg_url" if backend == "postgresql" else "dynamodb_url"
        url: str = request.getfixturevalue(fixture)
        yield url


StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture
async def make_store(store_url: str) -> AsyncIterator[StoreFactory]:
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
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
