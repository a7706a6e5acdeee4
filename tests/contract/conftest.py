"""The store under test for the contract suite: a SQLite, a PostgreSQL, a DynamoDB and an
in-memory store, one after the other.

- SQLite: a file under ``tmp_path``.
- PostgreSQL and DynamoDB (moto): the service fixtures of ``tests/services.py``.
- Memory: a ``memory://NAME`` of its own, forgotten afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from longline.stores.memory import forget

DURABLE = ("sqlite", "postgresql", "dynamodb")  # what outlives the process
BACKENDS = (*DURABLE, "memory")


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
