"""Run real capture with the operators' listener on a free loopback port, in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from longline.api import App
from longline.config import Config
from longline.engine.reload import Reloader
from longline.engine.runner import Runner
from longline.ops.http import OpsServer, app_service, runner_service
from longline.ops.listen import Listen

Metrics = dict[str, dict[tuple[tuple[str, str], ...], float]]
"""Scraped metrics: family -> sorted label pairs -> value."""


@contextlib.asynccontextmanager
async def listening(
    runner: Runner, token: str | None = None
) -> AsyncIterator[list[OpsServer]]:
    """Add the listener to ``runner.services``; the list gets the server once it is bound."""
    servers: list[OpsServer] = []
    inner = runner_service(Listen("127.0.0.1", 0, token))

    @contextlib.asynccontextmanager
    async def service(r: Runner) -> AsyncIterator[OpsServer]:
        async with inner(r) as server:
            servers.append(server)
            yield server

    runner.services.append(service)
    yield servers


@contextlib.asynccontextmanager
async def running(
    cfg: Config, token: str | None = None, reload_from: Path | None = None
) -> AsyncIterator[tuple[Runner, str, OpsServer]]:
    """``cfg`` served as ``longline run --http`` does (an App: capture, its processors and the
    listener); yields the capture runner, the listener's base URL and the listener. With
    ``reload_from`` (the file ``cfg`` was read from) ``POST /api/reload`` re-reads that file,
    as SIGHUP does."""
    servers: list[OpsServer] = []
    app = App.from_config(cfg)
    reload = None if reload_from is None else Reloader(reload_from, app).reload_line
    inner = app_service(Listen("127.0.0.1", 0, token), reload=reload)

    @contextlib.asynccontextmanager
    async def service(app: App) -> AsyncIterator[OpsServer]:
        async with inner(app) as server:
            servers.append(server)
            yield server

    task = asyncio.create_task(app.serve(services=[service]))
    try:
        for _ in range(200):
            if servers or task.done():
                break
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
        assert servers, "the listener did not start"
        assert app.runner is not None
        app.runner.status_interval = 0.2
        yield app.runner, f"http://127.0.0.1:{servers[0].port}", servers[0]
    finally:
        app.stop()
        await task


async def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers or {}) as resp,
    ):
        return resp.status, await resp.text(), dict(resp.headers)


def parse_metrics(text: str) -> Metrics:
    """Prometheus text parsed by prometheus-client's parser (``_created`` samples left out)."""
    return {
        f.name: {
            tuple(sorted(s.labels.items())): s.value
            for s in f.samples
            if not s.name.endswith("_created")
        }
        for f in text_string_to_metric_families(text)
    }


async def scrape(base: str) -> Metrics:
    """``GET base/metrics``, parsed."""
    status, text, _ = await get(base + "/metrics")
    assert status == 200
    return parse_metrics(text)


def per_stream(m: Metrics, family: str) -> dict[str, float]:
    """One family's values by their ``stream`` label."""
    return {dict(k)["stream"]: v for k, v in m[family].items()}
