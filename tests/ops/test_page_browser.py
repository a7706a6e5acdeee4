"""The live status page in a real headless Chromium (Debian's ``chromium``, driven by
playwright through ``executable_path``; no browser download)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from longline.config import parse_config
from longline.core.model import Event, Quarantined
from longline.delivery.dispatcher import DeliveryStats, Dispatcher
from longline.engine.runner import Runner
from longline.engine.stats import StreamStats
from longline.ops.http import OpsServer
from longline.ops.listen import Listen
from longline.ops.live import OpsView
from longline.testing.provider import Provider
from tests.conftest import make_config
from tests.ops.http_helpers import get, running
from tests.services import service_missing

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


EVENTS_ABOVE = """([name, n]) => {
    const cell = document.querySelector(`[data-stream="${name}"] .events`);
    return cell !== null && Number(cell.textContent.replace(/,/g, "")) > n;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        service_missing("playwright is not installed (pip install -e '.[test]')")
    if shutil.which(CHROMIUM) is None:
        service_missing(f"no browser at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def events_of(page: Any, stream: str) -> int:
    text = await page.locator(f'[data-stream="{stream}"] .events').text_content()
    return int(text.replace(",", ""))


async def test_page_shows_streams_live_and_survives_a_restart(
    provider: Provider, browser: Any, tmp_path: Path
) -> None:
    cfg = make_config(
        tmp_path / "p.db",
        {"name": "fast", "transport": "sse", "url": provider.url("sse", "fast", rate=40)},
        {"name": "slow", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "slow", rate=5, malformed_every=4)},
        {"name": "denied", "transport": "sse", "url": provider.url("sse", "d", status=401)},
        processors=[{"name": "sink", "kind": "command", "argv": ["cat"], "streams": ["slow"]}],
    )
    async with running(cfg) as (runner, base, server):
        page = await browser.new_page(viewport={"width": 1400, "height": 800})
        await page.goto(base + "/")
        await page.wait_for_function(
            "() => document.querySelectorAll('[data-stream]').length === 3"
        )
        assert await page.text_content("#conn") == "live"
        names = await page.eval_on_selector_all(
            "[data-stream]", "els => els.map(e => e.dataset.stream)"
        )
        assert names == ["denied", "fast", "slow"]  # problems first, then by name
        # A failed stream is highlighted with its reason.
        denied = page.locator('[data-stream="denied"]')
        await page.wait_for_selector('[data-stream="denied"].failed', timeout=10_000)
        assert "HTTP 401 Unauthorized" in (await denied.locator(".reason").text_content())
        assert await page.text_content("#n-bad") == "1"
        # Counters rise while the feed runs, without reloading the page.
        first = await events_of(page, "fast")
        await page.wait_for_function(EVENTS_ABOVE, arg=["fast", first + 40], timeout=10_000)
        await page.wait_for_selector('[data-stream="fast"] .rate svg path')
        rate = float(await page.locator('[data-stream="fast"] .rate .num').text_content())
        assert 10 < rate < 100
        assert runner.stats["fast"].events >= first + 40
        # The processor lane, with what it delivered and its lag.
        lane = page.locator('[data-lane="sink/slow"] td')
        await page.wait_for_function(
            """() => { const c = document.querySelectorAll('[data-lane="sink/slow"] td');
                       return c.length === 7 && Number(c[3].textContent) > 0; }""",
            timeout=10_000,
        )
        assert await lane.all_text_contents() != []
        assert (await lane.nth(0).text_content(), await lane.nth(1).text_content()) == (
            "sink", "slow"
        )
        await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # The listener restarts (same port): the page says so, reconnects, and goes on.
        await server.stop()
        await page.wait_for_function("() => document.getElementById('conn').textContent !== 'live'")
        again = OpsServer(Listen("127.0.0.1", server.port, None), server.view)
        await again.start()
        try:
            await page.wait_for_function(
                "() => document.getElementById('conn').textContent === 'live'", timeout=10_000
            )
            before = await events_of(page, "fast")
            await page.wait_for_function(EVENTS_ABOVE, arg=["fast", before], timeout=10_000)
            assert (await get(base + "/healthz"))[0] == 200
        finally:
            await again.stop()


async def test_page_at_ten_thousand_streams_pages_and_filters(
    browser: Any, tmp_path: Path
) -> None:
    """10,000 synthetic streams (their stats set by the test, no connections): the page renders
    only the rows in view, and filtering by name and by state finds the right ones."""
    n = 10_000
    cfg = parse_config({
        "store": f"sqlite:///{tmp_path / 'big.db'}",
        "streams": [{"name": f"s{i:05d}", "transport": "sse", "url": "http://127.0.0.1:9/"}
                    for i in range(n)],
    })
    runner = Runner(cfg)
    failed = {f"s{i:05d}" for i in range(0, n, 500)}
    for i, s in enumerate(cfg.streams):
        bad = s.name in failed
        runner.stats[s.name] = StreamStats(
            state="failed" if bad else "live", reason="HTTP 403 Forbidden" if bad else None,
            events=i, connections=0 if bad else 1, started_at=1.0,
        )  # fmt: skip
    await runner.store.open()
    view = OpsView(cfg, runner.store, runner=runner)
    await view.start()
    server = OpsServer(Listen("127.0.0.1", 0, None), view)
    await server.start()
    try:
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await page.wait_for_function(
            "() => document.getElementById('n-streams').textContent === '10,000'",
            timeout=20_000,
        )
        assert await page.text_content("#count") == "showing 10,000 of 10,000"
        assert await page.text_content("#n-bad") == "20"
        rows = await page.locator("[data-stream]").count()
        assert 10 < rows < 100  # only what is in view (and a few around it)
        assert await page.locator("[data-stream]").first.get_attribute("data-stream") == "s00000"
        assert await page.locator('[data-stream="s00000"].failed').count() == 1
        # Scrolling to the end brings the last stream in.
        await page.eval_on_selector("#viewport", "vp => { vp.scrollTop = vp.scrollHeight; }")
        await page.wait_for_selector('[data-stream="s09999"]')
        # Filter by name: exactly one row; its counter follows the stats.
        await page.fill("#filter", "s09876")
        await page.wait_for_function(
            "() => document.getElementById('count').textContent === 'showing 1 of 10,000'"
        )
        names = await page.eval_on_selector_all(
            "[data-stream]", "els => els.map(e => e.dataset.stream)"
        )
        assert names == ["s09876"]
        assert await events_of(page, "s09876") == 9876
        runner.stats["s09876"].events += 1000
        await page.wait_for_function(EVENTS_ABOVE, arg=["s09876", 10_875], timeout=10_000)
        # Filter by state: the 20 failed ones, all highlighted.
        await page.fill("#filter", "")
        await page.select_option("#state", "failed")
        await page.wait_for_function(
            "() => document.getElementById('count').textContent === 'showing 20 of 10,000'"
        )
        shown = await page.eval_on_selector_all(
            "[data-stream]", "els => els.map(e => [e.dataset.stream, e.className])"
        )
        assert [name for name, _ in shown] == sorted(failed)
        assert all("failed" in cls for _, cls in shown)
    finally:
        await server.stop()
        await runner.store.close()


async def test_page_with_a_token_asks_the_browser_for_it(
    provider: Provider, browser: Any, tmp_path: Path
) -> None:
    token = "page-t0ken"
    cfg = make_config(tmp_path / "t.db", {"name": "a", "transport": "sse",
                                          "url": provider.url("sse", "a", rate=20)})
    async with running(cfg, token=token) as (_, base, _server):
        status, _, headers = await get(base + "/")
        assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="longline"')
        # The login prompt's answer (any user, the token as password) also feeds the page's
        # event stream: EventSource sends it along.
        context = await browser.new_context(
            http_credentials={"username": "ops", "password": token}
        )
        page = await context.new_page()
        await page.goto(base + "/")
        await page.wait_for_selector('[data-stream="a"]')
        await page.wait_for_function(EVENTS_ABOVE, arg=["a", 5], timeout=10_000)
        assert await page.text_content("#conn") == "live"
        await context.close()


async def test_page_shows_every_column_and_a_stalled_row(browser: Any, tmp_path: Path) -> None:
    """Known figures (the store's totals, this run's stats set by the test, a lane): each cell
    shows the store's total plus the run's count, and a stream down for longer than its backoff
    allows is a stalled (``unready``) row with why."""
    cfg = parse_config({
        "store": f"sqlite:///{tmp_path / 'cols.db'}",
        "streams": [
            {"name": name, "transport": "sse", "url": "http://127.0.0.1:9/",
             "stall_timeout": "1s", "backoff": {"initial": "100ms", "max": "1s"}}
            for name in ("busy", "down")
        ],
        "processors": [{"name": "sink", "kind": "command", "argv": ["cat"], "streams": ["busy"]}],
    })  # fmt: skip
    runner = Runner(cfg)
    await runner.store.open()
    store = runner.store
    # Before this process: 5 events (one sent twice), 2 quarantined, 3 reconnects; "sink"
    # acknowledged up to seq 4 and gave up on seq 2.
    events = [Event(f"k{i}", "{}", f"c-{i}", 1.0) for i in (1, 2, 3, 3, 4, 5)]
    await store.append("busy", events, reconnects=3)
    await store.quarantine("busy", [Quarantined("no key", b"{}", 1.0)] * 2)
    second = (await store.read("busy", 1, 1))[0]
    await store.ack("sink", "busy", 4, [(second, "boom", 3)])
    now = time.time()
    runner.stats["busy"] = StreamStats(
        state="live", events=10, duplicates=2, quarantined=1, reconnects=4, connections=1,
        last_event_at=now - 600, started_at=1.0,
    )  # fmt: skip
    runner.stats["down"] = StreamStats(
        state="backing-off", reason="HTTP 503 Service Unavailable", down_since=now - 7200,
        started_at=1.0,
    )  # fmt: skip
    dispatcher = Dispatcher(cfg, store)
    dispatcher.stats["sink", "busy"] = DeliveryStats(cursor=4, state="idle")
    view = OpsView(cfg, store, runner=runner, dispatcher=dispatcher)
    await view.start()
    server = OpsServer(Listen("127.0.0.1", 0, None), view)
    await server.start()
    try:
        page = await browser.new_page(viewport={"width": 1600, "height": 600})
        await page.goto(f"http://127.0.0.1:{server.port}/")
        await page.wait_for_function(
            """() => { const c = document.querySelector('[data-stream="busy"] div:nth-child(9)');
                       return c !== null && c.textContent !== "-"; }""",
            timeout=10_000,
        )  # the cursor is read from the store after the first frame
        cells = await page.locator('[data-stream="busy"] > div').all_text_contents()
        # stream, state, events, events/s, duplicates, quarantined, reconnects, last event,
        # cursor, reason: the store's totals plus this run's figures.
        assert [cells[i] for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)] == [
            "busy", "live", "15", "3", "3", "7", "10m ago", "c-5", ""
        ]  # fmt: skip
        # Down for two hours, its backoff allows 2 s: stalled, red, listed first, with why.
        assert await page.locator('[data-stream="down"].unready').count() == 1
        assert await page.locator('[data-stream="down"].failed').count() == 0
        names = await page.eval_on_selector_all(
            "[data-stream]", "els => els.map(e => e.dataset.stream)"
        )
        assert names == ["down", "busy"]
        down = await page.locator('[data-stream="down"] > div').all_text_contents()
        assert down[1] == "backing-off (stalled)"
        assert down[9] == "no live connection for 2.0h (allowed 2s): HTTP 503 Service Unavailable"
        assert (down[2], down[7], down[8]) == ("0", "-", "-")
        assert await page.text_content("#n-bad") == "1"
        # The lane: delivered 3 (cursor 4 less its dead letter), lag 15 - 4, 1 dead letter.
        lane = page.locator('[data-lane="sink/busy"]')
        assert await lane.locator("td").all_text_contents() == [
            "sink", "busy", "idle", "3", "11", "1", ""
        ]  # fmt: skip
        assert "lagging" in (await lane.get_attribute("class") or "")
        # A later frame: the run stored 2 more, gave up on one more; the cells follow.
        runner.stats["busy"].events += 2
        dispatcher.stats["sink", "busy"].dead += 1
        dispatcher.stats["sink", "busy"].cursor = 5
        await page.wait_for_function(EVENTS_ABOVE, arg=["busy", 16], timeout=10_000)
        await page.wait_for_function(
            """() => [...document.querySelectorAll('[data-lane="sink/busy"] td')]
                       .map(c => c.textContent).join("|") === "sink|busy|idle|3|12|2|" """,
            timeout=10_000,
        )
    finally:
        await server.stop()
        await store.close()
