"""Fixtures that give the same store contract suite a SQLite, a PostgreSQL and a DynamoDB store.

- SQLite: a file under ``tmp_path``.
- PostgreSQL and DynamoDB (moto): the service fixtures of ``tests/services.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from longline.stores import Store, open_store

BACKENDS = ("sqlite", "postgresql", "dynamodb")


# -- the parametrized store ----------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty store of ``backend`` (the service fixtures are only asked for when
    their backend is, so a missing PostgreSQL never skips the SQLite cases)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    fixture = "pg_url" if backend == "postgresql" else "dynamodb_url"
    url: str = request.getfixturevalue(fixture)
    return url


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
