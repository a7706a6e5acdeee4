"""The ``longline`` pytest plugin, as a user meets it: a small test file of theirs run by
pytest (``pytester``) with the fixtures the ``pytest11`` entry point provides."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

USER_TESTS = '''
import asyncio

import pytest

import longline
from longline.testing.provider import event_bytes


async def wait_for(check, timeout=20.0):
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.asyncio
async def test_my_indexer_survives_cuts_and_a_503(longline_app, longline_provider):
    got = []

    @longline_app.processor
    async def index(events: list[longline.Event]) -> None:
        got.extend(events)

    url = longline_provider.url("sse", "feed", total=200, cut_every=60, fail_first=1,
                                retry_after="0")
    await longline_app.add_stream("feed", transport="sse", url=url,
                                  backoff={"initial": "20ms", "max": "200ms"})
    await wait_for(lambda: len(got) >= 200)
    assert [e.payload["id"] for e in got] == list(range(1, 201))
    assert got[0].text == event_bytes("feed", 1).decode()
    assert longline_provider.stats["feed"].refused == 1
    assert longline_app.status().streams["feed"].reconnects >= 3


def test_the_store_is_the_tests_own(longline_store, tmp_path):
    assert longline_store == f"sqlite:///{tmp_path / 'longline.db'}"


@pytest.mark.asyncio
async def test_events_are_readable_from_the_store(longline_app, longline_provider):
    await longline_app.add_stream("s", transport="lines", key="$.id",
                                  url=longline_provider.url("lines", "s", total=30))
    await wait_for(lambda: longline_app.status().streams["s"].events >= 30)
    assert [e.seq async for e in longline_app.events("s", after=25)] == [26, 27, 28, 29, 30]


@pytest.mark.asyncio
async def test_a_failing_assertion_is_reported_as_usual(longline_app):
    assert longline_app.status().streams == {"missing": None}
'''


def _plugin_args() -> list[str]:
    """Nothing when longline is installed with its entry point (the user's case); else load
    the module by name (a checkout on PYTHONPATH over an install without the entry point)."""
    points = importlib.metadata.entry_points(group="pytest11")
    if any(p.value == "longline.testing.pytest_plugin" for p in points):
        return []
    return ["-p", "longline.testing.pytest_plugin"]


def test_the_entry_point_names_the_plugin_module() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {
        "longline": "longline.testing.pytest_plugin"
    }


@pytest.mark.slow
def test_a_users_tests_get_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-q",
                                           timeout=120)  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_a_failing_assertion_is_reported_as_usual*"])
    text = result.stdout.str()
    assert "Task was destroyed but it is pending" not in text + result.stderr.str()
    assert "assert {} == {'missing': None}" in text
