"""Fixtures of the worker-mode tests: the shared store (SQLite file, PostgreSQL, DynamoDB on
the moto server) and the worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from longline.stores import Store, open_store
from tests.engine.workerlib import Workers


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    fixture = "pg_url" if request.param == "postgresql" else "dynamodb_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The test's own view of the shared store (another process, as it were); made before
    the workers start, so that DynamoDB tables exist."""
    s = open_store(store_url, create_tables=True)  # DynamoDB: the tables the workers use
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Callable[[Path], Workers]]:
    made: list[Workers] = []

    def make(config: Path) -> Workers:
        made.append(Workers(config, tmp_path))
        return made[-1]

    yield make
    for w in made:
        await w.kill_all()
