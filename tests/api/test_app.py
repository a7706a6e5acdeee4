"""``longline.App`` end to end against the local provider: what the decorated processors get,
streams added and stopped while serving, ``events(follow=True)``, ``status()``, and errors
that name the field."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import longline
from longline.processors.base import ProcessorError
from longline.stores import open_store
from longline.testing.provider import Provider, event_bytes

FAST: dict[str, Any] = {"backoff": {"initial": "50ms", "max": "500ms"}, "stall_timeout": "2s"}


def lines_options() -> dict[str, Any]:
    return {"key": "$.id", "cursor": "$.id", "resume": {"query": "since"}, **FAST}


def new_app(tmp_path: Path) -> longline.App:
    return longline.App(
        store=f"sqlite:///{tmp_path / 'capture.db'}",
        writer={"batch_max": 500, "batch_window": "10ms"},
    )


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for ``check()`` (polled every 20 ms), failing the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def ids(events: list[longline.Event]) -> list[int]:
    return [e.payload["id"] for e in events]


async def test_decorated_processors_get_exactly_the_captured_events_as_typed_events(
    provider: Provider, tmp_path: Path
) -> None:
    n = 400
    app = new_app(tmp_path)
    # SSE cut mid-event every 90 events: the reconnects must not lose or double anything.
    app.stream("wiki", transport="sse", url=provider.url("sse", "wiki", total=n, cut_every=90),
               **FAST)  # fmt: skip
    app.stream("other", transport="lines", url=provider.url("lines", "other", total=50),
               **lines_options())  # fmt: skip
    got: list[longline.Event] = []
    every: list[longline.Event] = []

    @app.processor(streams=["wiki"], batch=64)
    async def index(events: list[longline.Event]) -> None:
        got.extend(events)

    @app.processor
    def count(events: list[longline.Event]) -> None:  # sync: runs in a worker thread
        every.extend(events)

    async with app.running():
        await until(lambda: len(got) >= n and len(every) >= n + 50)
        await asyncio.sleep(0.3)  # nothing more may arrive

    assert ids(got) == list(range(1, n + 1))
    assert [e.seq for e in got] == list(range(1, n + 1))
    assert {e.stream for e in got} == {"wiki"}
    first = got[0]
    assert first.text == event_bytes("wiki", 1).decode()
    assert first.payload == orjson.loads(event_bytes("wiki", 1))
    assert (first.key, first.cursor, first.event_type) == ("1", "1", "tick")
    with pytest.raises(AttributeError):
        first.seq = 9  # type: ignore[misc]  # frozen
    by_stream = {s: [e for e in every if e.stream == s] for s in ("wiki", "other")}
    assert ids(by_stream["wiki"]) == list(range(1, n + 1))
    assert ids(by_stream["other"]) == list(range(1, 51))
    assert by_stream["other"][0].event_type is None
    status = app.status()
    assert not status.running
    assert status.streams["wiki"].state == "stopped"
    assert status.streams["wiki"].events == n
    assert status.streams["wiki"].reconnects >= n // 90
    lanes = status.lanes
    assert set(lanes) == {("index", "wiki"), ("count", "wiki"), ("count", "other")}
    assert (lanes["index", "wiki"].cursor, lanes["index", "wiki"].delivered) == (n, n)
    assert (lanes["count", "other"].cursor, lanes["count", "other"].delivered) == (50, 50)


async def test_add_and_stop_streams_while_serving(provider: Provider, tmp_path: Path) -> None:
    app = new_app(tmp_path)
    got: list[longline.Event] = []

    @app.processor(batch=50)
    async def collect(events: list[longline.Event]) -> None:
        got.extend(events)

    def of(stream: str) -> list[int]:
        return ids([e for e in got if e.stream == stream])

    async with app.running():
        assert app.status().running and app.status().streams == {}
        await app.add_stream("a", transport="lines", url=provider.url("lines", "a", total=100),
                             **lines_options())  # fmt: skip
        await until(lambda: len(of("a")) >= 100)
        await app.add_stream("b", transport="ws", url=provider.url("ws", "b", rate=200), **FAST)
        await until(lambda: app.status().streams["b"].events >= 20)
        stopped = await app.stop_stream("a")
        assert (stopped.state, stopped.events) == ("stopped", 100)
        assert app.status().streams["a"].state == "stopped"
        assert app.status().streams["b"].state == "live"
        assert provider.stats["a"].connections == 1
        # Started again, with more events on offer: it resumes after its checkpoint.
        await app.add_stream("a", transport="lines", url=provider.url("lines", "a", total=150),
                             **lines_options())  # fmt: skip
        await until(lambda: len(of("a")) >= 150 and len(of("b")) >= 40)
        with pytest.raises(longline.ConfigError, match=r"streams\.b\.name: duplicate"):
            await app.add_stream("b", transport="ws", url=provider.url("ws", "b"))
    assert of("a") == list(range(1, 151))
    b = of("b")
    assert b == list(range(1, len(b) + 1))
    assert [e.seq for e in got if e.stream == "a"] == list(range(1, 151))
    final = app.status()
    assert (final.streams["a"].events, final.streams["b"].state) == (50, "stopped")
    assert final.lanes["collect", "b"].cursor == len(b)


async def test_a_processor_registered_while_serving_gets_the_backlog(
    provider: Provider, tmp_path: Path
) -> None:
    app = new_app(tmp_path)
    app.stream("s", transport="lines", url=provider.url("lines", "s", total=120),
               **lines_options())  # fmt: skip
    late: list[longline.Event] = []
    async with app.running():
        await until(lambda: app.status().streams["s"].events >= 120)

        @app.processor(streams=["s"], batch=7)
        def backlog(events: list[longline.Event]) -> None:
            late.extend(events)

        await until(lambda: len(late) >= 120)
    assert ids(late) == list(range(1, 121))


async def test_events_follow_sees_new_commits_then_reads_without_serving(
    provider: Provider, tmp_path: Path
) -> None:
    app = new_app(tmp_path)
    app.stream("live", transport="sse", url=provider.url("sse", "live", total=300, rate=600),
               **FAST)  # fmt: skip
    seen: list[longline.Event] = []

    async def follow() -> None:
        async for event in app.events("live", follow=True, poll=0.02):
            seen.append(event)
            if event.seq == 300:
                return

    async with app.running():
        reader = asyncio.create_task(follow())
        await until(lambda: len(seen) >= 10)
        # The reader started before most events were committed: it saw them arrive.
        assert app.status().streams["live"].events < 300
        await asyncio.wait_for(reader, 20)
    assert ids(seen) == list(range(1, 301))
    assert [e.seq for e in seen] == list(range(1, 301))
    # Not serving: the app reads the store through a connection of its own.
    tail = [e.seq async for e in app.events("live", after=290)]
    assert tail == list(range(291, 301))
    assert [e.seq async for e in app.events("live", after=300)] == []
    with pytest.raises(ValueError, match="no stream named 'nope'"):
        async for _ in app.events("nope"):
            pass


async def test_failing_events_are_retried_then_dead_lettered(
    provider: Provider, tmp_path: Path
) -> None:
    app = new_app(tmp_path)
    app.stream("s", transport="lines", url=provider.url("lines", "s", total=40),
               **lines_options())  # fmt: skip
    attempts: dict[int, int] = {}
    ok: list[int] = []

    @app.processor(batch=10, retry={"max_attempts": 3, "initial": "10ms", "max": "20ms"})
    async def picky(events: list[longline.Event]) -> None:
        for e in events:
            attempts[e.payload["id"]] = attempts.get(e.payload["id"], 0) + 1
        if any(e.payload["id"] == 13 for e in events):
            raise ProcessorError("13 is refused", permanent=True)
        if any(e.payload["id"] == 27 for e in events):
            raise RuntimeError("always down")  # transient: retried, then dead-lettered
        ok.extend(ids(events))

    async with app.running():
        await until(lambda: app.status().lanes.get(("picky", "s")) is not None)
        await until(lambda: app.status().lanes["picky", "s"].cursor == 40)
    # The permanent failure is bisected down to event 13; the transient one dead-letters
    # its whole batch (21..30) after 3 attempts.
    assert ok == [i for i in range(1, 41) if i != 13 and not 21 <= i <= 30]
    assert attempts[27] == 3
    store = open_store(f"sqlite:///{tmp_path / 'capture.db'}")
    await store.open()
    try:
        dead = await store.dead_letters("picky")
    finally:
        await store.close()
    assert sorted(d.seq for d in dead) == [13, *range(21, 31)]
    lane = app.status().lanes["picky", "s"]
    assert (lane.delivered, lane.dead) == (29, 11)


def test_options_are_validated_by_the_config_models_and_errors_name_the_field(
    tmp_path: Path,
) -> None:
    app = new_app(tmp_path)
    with pytest.raises(longline.ConfigError) as bad:
        app.stream("wiki", transport="sse", url="http://h/", stall_timeout="soon", redundancy=0)
    lines = bad.value.errors
    assert any(line.startswith("streams.wiki.stall_timeout: ") for line in lines), lines
    assert any(line.startswith("streams.wiki.redundancy: must be >= 1") for line in lines)
    with pytest.raises(longline.ConfigError, match=r"^streams\.wiki\.url: "):
        app.stream("wiki", transport="sse", url="ftp://x")
    with pytest.raises(longline.ConfigError, match=r"streams\.x\.bogus: unknown key"):
        app.stream("x", transport="sse", url="http://127.0.0.1:1/", bogus=1)  # type: ignore[call-arg]
    app.stream("wiki", transport="sse", url="http://127.0.0.1:1/sse")
    with pytest.raises(longline.ConfigError, match=r"streams\.wiki\.name: duplicate"):
        app.stream("wiki", transport="sse", url="http://127.0.0.1:1/sse")

    def handler(events: list[longline.Event]) -> None:
        return None

    with pytest.raises(longline.ConfigError, match=r"processors\.p\.batch: must be >= 1"):
        app.processor(name="p", batch=0)(handler)
    with pytest.raises(longline.ConfigError, match=r"processors\.q\.streams\[0\]: no stream"):
        app.processor(name="q", streams=["nope"])(handler)
    with pytest.raises(longline.ConfigError, match=r"processors\.r\.retry\.max_attempts"):
        app.processor(name="r", retry={"max_attempts": 0})(handler)
    app.processor(name="p")(handler)
    with pytest.raises(longline.ConfigError, match=r"processors\.p\.name: duplicate"):
        app.processor(name="p")(handler)
    with pytest.raises(longline.ConfigError, match=r"^store: "):
        longline.App(store="mysql://x")
    assert set(app.status().streams) == {"wiki"}


def test_stream_options_are_the_yaml_stream_keys() -> None:
    from longline.config import StreamConfig

    assert set(longline.StreamOptions.__annotations__) == set(StreamConfig.model_fields) - {
        "name",
        "transport",
        "url",
    }


def test_secrets_in_options_come_from_the_environment_and_never_show(tmp_path: Path) -> None:
    app = longline.App(store=f"sqlite:///{tmp_path / 'c.db'}", env={"TOKEN": "s3cr3t-value"})
    with pytest.raises(longline.ConfigError) as bad:
        app.stream("x", transport="ws", url="https://h/?t=${TOKEN}",
                   headers={"Authorization": "Bearer ${TOKEN}"})  # fmt: skip
    assert "s3cr3t-value" not in str(bad.value)
    assert "streams.x.url" in str(bad.value)
    with pytest.raises(longline.ConfigError, match=r"streams\.y\.headers.*MISSING is not set"):
        app.stream("y", transport="ws", url="ws://h/", headers={"X-Api-Key": "${MISSING}"})


# -- from_config + run() (a loop of its own, so the provider runs in a thread) ----------------


@pytest.fixture
def threaded_provider() -> Iterator[Provider]:
    loop = asyncio.new_event_loop()
    provider = Provider()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(provider.start(), loop).result(10)
    try:
        yield provider
    finally:
        asyncio.run_coroutine_threadsafe(provider.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


COLLECTED: list[dict[str, Any]] = []


def collect_dicts(events: list[dict[str, Any]]) -> None:
    COLLECTED.extend(events)


def test_from_config_and_run_with_yaml_processors(
    threaded_provider: Provider, tmp_path: Path
) -> None:
    COLLECTED.clear()
    config = tmp_path / "my.yaml"
    db = tmp_path / "c.db"
    config.write_text(
        f"""
store: sqlite:///{db}
streams:
  - name: feed
    transport: lines
    url: {threaded_provider.url("lines", "feed", total=80)}
    key: $.id
    cursor: $.id
    resume: {{query: since}}
processors:
  - name: yaml
    kind: python
    target: {__name__}:collect_dicts
"""
    )
    app = longline.App.from_config(config)
    typed: list[longline.Event] = []

    @app.processor(streams=["feed"])
    def also(events: list[longline.Event]) -> None:
        typed.extend(events)

    status = app.run(duration=3.0)
    assert not status.running
    assert [e["payload"]["id"] for e in COLLECTED] == list(range(1, 81))  # dicts, as in YAML
    assert ids(typed) == list(range(1, 81))
    assert status.streams["feed"].events == 80
    assert status.lanes["yaml", "feed"].cursor == 80
    with pytest.raises(longline.ConfigError, match=r"streams\[0\]\.transport"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("streams: [{name: a, transport: smoke, url: 'http://h/'}]\n")
        longline.App.from_config(bad)


def test_longline_run_delivers_to_the_processors_through_the_app(
    threaded_provider: Provider, tmp_path: Path
) -> None:
    """`longline run` composes capture and delivery through App: no second wiring."""
    from click.testing import CliRunner

    from longline.cli import main

    COLLECTED.clear()
    config = tmp_path / "run.yaml"
    config.write_text(
        f"""
store: sqlite:///{tmp_path / "r.db"}
streams:
  - {{name: feed, transport: lines, key: $.id, cursor: $.id, resume: {{query: since}},
      url: "{threaded_provider.url("lines", "feed", total=60)}"}}
processors:
  - {{name: p, kind: python, target: "{__name__}:collect_dicts", batch: 25}}
"""
    )
    result = CliRunner().invoke(main, ["--log-level", "ERROR", "run", str(config),
                                       "--duration", "2.5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [e["seq"] for e in COLLECTED] == list(range(1, 61))


async def test_serve_ends_when_every_stream_failed_but_not_when_streams_are_stopped(
    provider: Provider, tmp_path: Path
) -> None:
    app = new_app(tmp_path)
    app.stream("denied", transport="sse", url=provider.url("sse", "denied", status=401), **FAST)
    status = await asyncio.wait_for(app.serve(), 20)  # no stop(): it ends by itself
    assert status.streams["denied"].state == "failed"
    assert "401" in (status.streams["denied"].reason or "")

    other = new_app(tmp_path)
    other.stream("s", transport="lines", url=provider.url("lines", "s2", total=5),
                 **lines_options())  # fmt: skip
    serving = asyncio.create_task(other.serve())
    await until(lambda: other.status().streams["s"].events == 5)
    await other.stop_stream("s")
    await asyncio.sleep(0.3)
    assert not serving.done()  # a stream stopped on purpose does not end serving
    other.stop()
    final = await asyncio.wait_for(serving, 10)
    assert (final.running, final.streams["s"].state) == (False, "stopped")


async def test_a_follower_keeps_reading_after_the_app_stops(
    provider: Provider, tmp_path: Path
) -> None:
    app = new_app(tmp_path)
    app.stream("s", transport="lines", url=provider.url("lines", "s", total=40),
               **lines_options())  # fmt: skip
    seen: list[int] = []

    async def follow() -> None:
        async for event in app.events("s", follow=True, poll=0.02):
            seen.append(event.seq)

    async with app.running():
        reader = asyncio.create_task(follow())
        await until(lambda: len(seen) >= 40)
    # The app's store is closed now; the follower switched to a connection of its own and
    # sees what another app (another process, say) commits next.
    assert app.status().running is False
    second = new_app(tmp_path)
    second.stream("s", transport="lines", url=provider.url("lines", "s", total=60),
                  **lines_options())  # fmt: skip
    async with second.running():
        await until(lambda: len(seen) >= 60)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert seen == list(range(1, 61))


async def test_every_top_level_setting_reaches_the_engine(tmp_path: Path) -> None:
    """Not only store and writer: shutdown_timeout (and whatever a file may set) too."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"store: sqlite:///{tmp_path / 'c.db'}\nshutdown_timeout: 1500ms\n"
        "streams: [{name: s, transport: sse, url: 'http://127.0.0.1:1/sse'}]\n"
    )
    for app in (
        longline.App.from_config(config),
        longline.App(f"sqlite:///{tmp_path / 'd.db'}", settings={"shutdown_timeout": 1.5}),
    ):
        async with app.running():
            assert app.runner is not None
            assert app.runner.config.shutdown_timeout == 1.5
    with pytest.raises(longline.ConfigError, match=r"^shutdown_timeout: "):
        longline.App(settings={"shutdown_timeout": "later"})
    with pytest.raises(ValueError, match=r"app\.stream"):
        longline.App(settings={"streams": []})


async def test_an_app_on_a_named_memory_store(provider: Provider) -> None:
    from longline.stores.memory import forget

    app = longline.App(store="memory://api-test")
    app.stream("s", transport="lines", url=provider.url("lines", "mem", total=30),
               **lines_options())  # fmt: skip
    got: list[longline.Event] = []

    @app.processor
    async def collect(events: list[longline.Event]) -> None:
        got.extend(events)

    try:
        async with app.running():
            await until(lambda: len(got) >= 30)
        # Not serving: events() opens the same named store again.
        assert [e.seq async for e in app.events("s", after=27)] == [28, 29, 30]
    finally:
        forget("api-test")
    assert ids(got) == list(range(1, 31))
