"""pytest fixtures for testing your own code against longline (the ``longline`` pytest plugin).

Installed with longline and loaded by pytest through the ``pytest11`` entry point, so a test
only names a fixture:

- ``longline_provider``: a started local ``Provider`` (SSE, WebSocket and lines feeds on
  loopback) whose URLs carry the faults to inject: ``longline_provider.url("sse", "feed",
  total=500, cut_every=100, fail_first=2, retry_after="1")`` (see ``docs/provider.md``).
- ``longline_store``: the URL of a store in the test's temporary directory (SQLite).
- ``longline_app``: an ``App`` on ``longline_store``, serving in the test's event loop with no
  stream yet: add streams with ``await longline_app.add_stream(...)`` and processors with
  ``@longline_app.processor``; it is flushed and stopped at teardown.

The two async fixtures need ``pytest-asyncio``; without it, using them fails the test with
that message (and the plugin never breaks a test run that does not use them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported when a fixture is used: loading the plugin stays cheap
    from longline.api import App
    from longline.testing.provider import Provider

__all__ = ["longline_app", "longline_provider", "longline_store"]


@pytest.fixture
def longline_store(tmp_path: Path) -> str:
    """A store URL for this test only: ``sqlite:///<tmp_path>/longline.db``."""
    return f"sqlite:///{tmp_path / 'longline.db'}"


async def _provider() -> AsyncIterator[Provider]:
    from longline.testing.provider import Provider

    provider = Provider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


async def _app(longline_store: str) -> AsyncIterator[App]:
    from longline.api import App

    app = App(store=longline_store)
    async with app.running():
        yield app


def _needs_pytest_asyncio(name: str) -> Any:
    def missing() -> None:
        pytest.fail(f"the {name} fixture needs pytest-asyncio: pip install pytest-asyncio")

    missing.__name__ = name
    return pytest.fixture(name=name)(missing)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    longline_provider = _needs_pytest_asyncio("longline_provider")
    longline_app = _needs_pytest_asyncio("longline_app")
else:
    longline_provider = pytest_asyncio.fixture(name="longline_provider")(_provider)
    """A started local provider with fault injection, stopped at teardown."""
    longline_app = pytest_asyncio.fixture(name="longline_app")(_app)
    """An App serving on ``longline_store`` in the test's event loop, stopped at teardown."""
