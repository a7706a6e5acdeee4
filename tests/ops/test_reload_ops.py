"""The operators' listener across a live reload (``POST /api/reload``), in-process: what it
answers names the reloaded config at once, and its counters continue from the store's totals
whatever was scraped before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.config import load_config
from longline.core.model import Event, Quarantined
from longline.stores import open_store
from longline.testing.provider import Provider
from tests.ops.http_helpers import Metrics, get, per_stream, running, scrape

SLACK = 20.0  # seconds for what should happen soon on a loaded machine


def feed(provider: Provider, name: str, **params: object) -> dict[str, Any]:
    """A resumable lines stream (``since``): a restart asks only for what is not stored."""
    return {
        "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id",
        "resume": {"query": "since"}, "url": provider.url("lines", name, since=0, **params),
        "backoff": {"initial": "50ms", "max": "200ms"},
    }  # fmt: skip


def write(
    path: Path, *streams: dict[str, Any], processors: list[dict[str, Any]] | None = None
) -> None:
    data: dict[str, Any] = {
        "store": f"sqlite:///{path.with_suffix('.db')}",
        "shutdown_timeout": "5s",
        "writer": {"batch_window": "10ms"},
        "streams": list(streams),
    }
    if processors:
        data["processors"] = list(processors)
    path.write_text(yaml.safe_dump(data))


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLACK
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def reload(base: str) -> str:
    status, body, _ = await get(base + "/api/reload", method="POST")
    assert status == 200, body
    detail: str = orjson.loads(body)["detail"]
    return detail


def reconnects(m: Metrics) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in m["longline_reconnects"].items():
        d = dict(labels)
        if d["cause"] != "rotation":  # planned rotations are not reconnects in the totals
            out[d["stream"]] = out.get(d["stream"], 0) + value
    return out


async def test_api_status_names_the_reloaded_streams_at_once(
    provider: Provider, tmp_path: Path
) -> None:
    path = tmp_path / "s.yaml"
    a, b, c = (feed(provider, n, total=20) for n in ("a", "b", "c"))
    write(path, a, c)
    async with running(load_config(path), reload_from=path) as (runner, base, _server):
        await until(lambda: {"a", "c"} <= set(runner.stats), "both streams started")
        status, body, _ = await get(base + "/api/status")
        assert (status, list(orjson.loads(body)["streams"])) == (200, ["a", "c"])
        write(path, a, b, c)
        assert await reload(base) == "reloaded: 1 stream(s) started (b)"
        # No scrape, no /readyz, no page in between: the answer still follows the reload.
        status, body, _ = await get(base + "/api/status")
        assert (status, list(orjson.loads(body)["streams"])) == (200, ["a", "b", "c"])
        write(path, a, b)
        assert await reload(base) == "reloaded: 1 stream(s) stopped (c)"
        status, body, _ = await get(base + "/api/status")
        assert (status, list(orjson.loads(body)["streams"])) == (200, ["a", "b"])


async def _history(db: Path) -> None:
    """Stream ``b`` (not configured yet) ran before: 40 events, 2 reconnects, 1 quarantined,
    and processor ``p`` delivered 10 of them, one of which it gave up on."""
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        events = [Event(str(i), orjson.dumps({"id": i}).decode(), str(i), 1.0)
                  for i in range(1, 41)]  # fmt: skip
        await store.append("b", events, reconnects=2)
        await store.quarantine("b", [Quarantined("no key", b"{}", 1.0)])
        third = (await store.read("b", 2, 1))[0]
        await store.ack("p", "b", 10, [(third, "boom", 3)])
    finally:
        await store.close()


async def test_counters_continue_from_the_store_across_reloads_never_scraped(
    provider: Provider, tmp_path: Path
) -> None:
    """A stream restarted by a reload before any scrape keeps what it counted; a stream and a
    processor lane added by a reload start from their history in the store."""
    path = tmp_path / "r.yaml"
    await _history(path.with_suffix(".db"))
    a = feed(provider, "a", total=30)
    c = feed(provider, "c", total=103, disconnect_every=50)  # 2 reconnects of its own
    write(path, a, c)
    async with running(load_config(path), reload_from=path) as (runner, base, server):
        store = server.view.store
        await until(
            lambda: {n: s.events for n, s in runner.stats.items()} == {"a": 30, "c": 103},
            "a and c stored",
        )
        # Changed (so restarted) and added, with a processor for b: nothing scraped before.
        c_again = feed(provider, "c", total=103, disconnect_every=50, keepalive=0.5)
        p = {"name": "p", "kind": "command", "argv": ["cat"], "batch": 7, "streams": ["b"]}
        write(path, a, feed(provider, "b", total=60), c_again, processors=[p])
        assert await reload(base) == (
            "reloaded: 1 stream(s) started (b); 1 stream(s) restarted (c); "
            "1 processor(s) started (p)"
        )
        await until(lambda: runner.stats["b"].events == 20, "b's new events stored")
        first = await scrape(base)  # the first scrape of the process
        assert per_stream(first, "longline_events_stored") == {"a": 30, "b": 60, "c": 103}
        lane = (("processor", "p"), ("stream", "b"))
        for _ in range(int(SLACK / 0.05)):  # until p delivered everything b holds
            if first["longline_processor_lag_events"].get(lane) == 0:
                break
            await asyncio.sleep(0.05)
            first = await scrape(base)
        assert first["longline_processor_lag_events"].get(lane) == 0, first
        totals = await store.totals()
        for family, attr in (("longline_events_stored", "events"),
                             ("longline_duplicates", "duplicates"),
                             ("longline_quarantined", "quarantined")):  # fmt: skip
            assert per_stream(first, family) == {
                n: getattr(totals[n], attr) for n in ("a", "b", "c")
            }, family
        assert reconnects(first) == {n: totals[n].reconnects for n in ("b", "c")}
        assert totals["c"].reconnects == 2 and totals["b"].reconnects == 2
        # The lane continues from the stored cursor (10) less its dead letter.
        dead = len(await store.dead_letters("p"))
        assert (await store.delivery_cursor("p", "b"), dead) == (60, 1)
        assert first["longline_processor_delivered"][lane] == 60 - dead
        assert first["longline_dead_letters"][lane] == dead
        # Restarted again (c, and p with another batch), scraped right after: nothing drops.
        p["batch"] = 5
        write(path, a, feed(provider, "b", total=60), c, processors=[p])
        assert await reload(base) == (
            "reloaded: 1 stream(s) restarted (c); 1 processor(s) restarted (p)"
        )
        second = await scrape(base)
        for family, values in first.items():
            if family.startswith("longline_") and family.endswith(
                ("_stored", "_duplicates", "_quarantined", "_reconnects", "_delivered", "_letters")
            ):
                for labels, value in values.items():
                    assert second[family].get(labels, 0) >= value, (family, labels)
        assert per_stream(second, "longline_events_stored") == {"a": 30, "b": 60, "c": 103}
        assert reconnects(second) == reconnects(first)
