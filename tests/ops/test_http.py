"""The operators' listener in-process: token rules, Host check, readiness, reload, listen rules."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from longline.config import ConfigError, parse_config
from longline.engine.runner import Runner
from longline.ops.http import OpsServer
from longline.ops.listen import Listen, ListenError, listen_settings
from longline.ops.live import OpsView
from longline.testing.provider import Provider
from tests.conftest import make_config
from tests.ops.http_helpers import Metrics, get, listening, parse_metrics, running

TOKEN = "t0k3n-very-secret"
GUARDED = ["/metrics", "/readyz", "/api/status", "/", "/api/events/status"]


async def test_token_guards_every_endpoint_but_healthz(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "t.db", {"name": "a", "transport": "sse",
                                          "url": provider.url("sse", "a", total=5)})
    async with running(cfg, token=TOKEN) as (_, base, _server):
        assert (await get(base + "/healthz"))[0] == 200
        for path in GUARDED:
            status, body, headers = await get(base + path)
            assert status == 401, path
            assert TOKEN not in body
            scheme = "Basic" if path == "/" else "Bearer"
            assert headers["WWW-Authenticate"] == f'{scheme} realm="longline"'
            wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
            assert (await get(base + path, wrong))[0] == 401, path
        for path in ("/metrics", "/readyz", "/api/status", "/"):
            status, body, _ = await get(base + path, {"Authorization": f"Bearer {TOKEN}"})
            assert status in (200, 503), (path, status)  # readyz may still be settling
            assert TOKEN not in body
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        status, page, headers = await get(base + "/", {"Authorization": f"Basic {basic}"})
        assert status == 200 and "<title>longline status</title>" in page
        assert "script-src 'unsafe-inline'" in headers["Content-Security-Policy"]
        # POST /api/reload needs the token too (loopback or not).
        assert (await get(base + "/api/reload", method="POST"))[0] == 401
        status, body, _ = await get(
            base + "/api/reload", {"Authorization": f"Bearer {TOKEN}"}, method="POST"
        )
        assert status == 501 and "restart" in orjson.loads(body)["error"]


async def test_without_token_only_loopback_hosts_and_same_origin_posts(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path / "h.db", {"name": "a", "transport": "sse",
                                          "url": provider.url("sse", "a", total=5)})
    async with running(cfg) as (_, base, _server):
        assert (await get(base + "/metrics"))[0] == 200
        port = base.rsplit(":", 1)[1]
        for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
            assert (await get(base + "/metrics", {"Host": host}))[0] == 200, host
        # A page on a rebound DNS name reaches 127.0.0.1 with a foreign Host: refused.
        assert (await get(base + "/api/status", {"Host": f"evil.example:{port}"}))[0] == 403
        assert (await get(base + "/healthz", {"Host": "evil.example"}))[0] == 200
        foreign = {"Origin": "http://evil.example"}
        assert (await get(base + "/api/reload", foreign, method="POST"))[0] == 403
        assert (await get(base + "/api/reload", method="POST"))[0] == 501


async def test_readyz_names_a_failed_stream(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "r.db",
        {"name": "good", "transport": "sse", "url": provider.url("sse", "g", rate=50)},
        {"name": "denied", "transport": "sse", "url": provider.url("sse", "d", status=401)},
    )
    runner = Runner(cfg, status_interval=0.2)
    async with listening(runner) as servers, runner.opened():
        base = f"http://127.0.0.1:{servers[0].port}"
        runner.start_stream(cfg.streams[0])
        for _ in range(100):
            if runner.stats["good"].state == "live":
                break
            await asyncio.sleep(0.05)
        status, body, _ = await get(base + "/readyz")
        assert (status, orjson.loads(body)) == (
            200, {"ready": True, "store": None, "streams": {}, "processors": {}}
        )
        runner.start_stream(cfg.streams[1])
        for _ in range(100):
            if runner.stats["denied"].state == "failed":
                break
            await asyncio.sleep(0.05)
        status, body, _ = await get(base + "/readyz")
        found = orjson.loads(body)
        assert status == 503 and found["ready"] is False and found["store"] is None
        assert list(found["streams"]) == ["denied"]
        assert found["streams"]["denied"].startswith("failed: HTTP 401 Unauthorized")
        await runner.shutdown()


async def test_metrics_count_processor_lanes(provider: Provider, tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "p.db",
        {"name": "a", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "a", total=30)},
        processors=[{"name": "sink", "kind": "command", "argv": ["cat"], "batch": 10}],
    )
    async with running(cfg) as (_, base, _server):
        families: Metrics = {}
        for _ in range(200):
            _, text, _ = await get(base + "/metrics")
            families = parse_metrics(text)
            lane = (("processor", "sink"), ("stream", "a"))
            if families["longline_processor_delivered"].get(lane) == 30:
                break
            await asyncio.sleep(0.05)
        assert families["longline_processor_delivered"][lane] == 30
        assert families["longline_processor_lag_events"][lane] == 0
        assert families["longline_dead_letters"][lane] == 0
        assert families["longline_events_stored"][(("stream", "a"),)] == 30


def _gauges(text: str) -> dict[str, float]:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


async def test_metrics_show_asyncio_tasks_and_open_fds(provider: Provider, tmp_path: Path) -> None:
    """The figures the reliability campaign watches across reconnects: they move with the
    process's real tasks and descriptors (the test runs in the same process and loop)."""
    cfg = make_config(tmp_path / "f.db", {"name": "a", "transport": "sse",
                                          "url": provider.url("sse", "a", total=5)})
    async with running(cfg) as (_, base, _server):
        before = _gauges((await get(base + "/metrics"))[1])
        assert before["longline_asyncio_tasks"] >= 2  # at least the stream and the listener
        assert before["process_open_fds"] == pytest.approx(len(os.listdir("/proc/self/fd")), abs=3)
        assert before["process_resident_memory_bytes"] > 10_000_000
        gate = asyncio.Event()
        extra = [asyncio.create_task(gate.wait()) for _ in range(50)]
        files = [open(os.devnull, "rb") for _ in range(40)]  # noqa: SIM115 (closed below)
        try:
            during = _gauges((await get(base + "/metrics"))[1])
        finally:
            gate.set()
            await asyncio.gather(*extra)
            for f in files:
                f.close()
        after = _gauges((await get(base + "/metrics"))[1])
        assert during["longline_asyncio_tasks"] - before["longline_asyncio_tasks"] == (
            pytest.approx(50, abs=3))
        assert during["process_open_fds"] - before["process_open_fds"] == pytest.approx(40, abs=3)
        assert after["longline_asyncio_tasks"] == pytest.approx(
            before["longline_asyncio_tasks"], abs=3)
        assert after["process_open_fds"] == pytest.approx(before["process_open_fds"], abs=3)


async def test_reload_endpoint_calls_the_callback(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "c.db", {"name": "a", "transport": "sse",
                                          "url": "http://127.0.0.1:9/"})
    runner = Runner(cfg)
    await runner.store.open()
    calls: list[str] = []

    async def reload() -> str:
        calls.append("x")
        if len(calls) == 2:
            raise ConfigError(["streams[0].url: bad"])
        return "1 stream changed"

    view = OpsView(cfg, runner.store, runner=runner, reload=reload)
    await view.start()
    server = OpsServer(Listen("127.0.0.1", 0, None), view)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/api/reload"
        status, body, _ = await get(url, method="POST")
        assert (status, orjson.loads(body)) == (
            200, {"reloaded": True, "detail": "1 stream changed"}
        )
        status, body, _ = await get(url, method="POST")
        assert (status, orjson.loads(body)) == (
            400, {"reloaded": False, "errors": ["streams[0].url: bad"]}
        )
        assert (await get(url))[0] == 405  # GET is not a reload
    finally:
        await server.stop()
        await runner.store.close()


async def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "c.db", {"name": "a", "transport": "sse",
                                          "url": "http://127.0.0.1:9/"})
    runner = Runner(cfg)
    await runner.store.open()
    view = OpsView(cfg, runner.store, runner=runner)
    first = OpsServer(Listen("127.0.0.1", 0, None), view)
    await first.start()
    try:
        second = OpsServer(Listen("127.0.0.1", first.port, None), view)
        with pytest.raises(ListenError, match=rf"cannot listen on 127\.0\.0\.1:{first.port}: "):
            await second.start()
    finally:
        await first.stop()
        await runner.store.close()


def _cfg(http: dict[str, str] | None = None) -> object:
    data: dict[str, object] = {"streams": [{"name": "a", "transport": "sse",
                                            "url": "http://127.0.0.1:9/"}]}
    if http is not None:
        data["http"] = http
    return data


def test_listen_settings_flag_wins_and_non_loopback_needs_a_token() -> None:
    assert listen_settings(parse_config(_cfg()), None) is None
    cfg = parse_config(_cfg({"listen": "127.0.0.1:9464"}))
    assert listen_settings(cfg, None) == Listen("127.0.0.1", 9464, None)
    assert listen_settings(cfg, "[::1]:1") == Listen("::1", 1, None)
    with pytest.raises(ListenError) as info:
        listen_settings(cfg, "0.0.0.0:9464")
    assert str(info.value) == (
        '--http: 0.0.0.0:9464 is not a loopback address: set http.token '
        '(e.g. token: "${LONGLINE_HTTP_TOKEN}") or listen on 127.0.0.1'
    )
    cfg = parse_config(_cfg({"listen": "10.0.0.5:9464", "token": "${TOK}"}), env={"TOK": TOKEN})
    assert listen_settings(cfg, None) == Listen("10.0.0.5", 9464, TOKEN)
    assert TOKEN in cfg.secrets and TOKEN not in str(cfg.redacted())
    assert str(listen_settings(cfg, None)) == "10.0.0.5:9464"


def test_http_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_cfg({"listen": "9464", "token": "", "port": "1"}))
    errors = "\n".join(info.value.errors)
    assert "http.listen: " in errors and "HOST:PORT" in errors
    assert "http.token: " in errors and "http.port: " in errors
    with pytest.raises(ConfigError) as info:
        parse_config(_cfg({"listen": "0.0.0.0:9464"}))
    assert info.value.errors == [
        "http.token: required: 0.0.0.0:9464 is not a loopback address"
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(_cfg({"listen": "127.0.0.1:9464", "token": "${NOPE}"}), env={})
    assert info.value.errors == ["http.token: environment variable NOPE is not set"]
    # Commands that only read the store (status, events) need no token.
    parse_config(_cfg({"listen": "127.0.0.1:9464", "token": "${NOPE}"}), env={}, read_only=True)


def test_cli_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'c.db'}",
                                   "streams": [{"name": "a", "transport": "sse",
                                                "url": "http://127.0.0.1:9/"}]}))
    for cmd in (["run", str(cfg), "--http", "0.0.0.0:9464"],):
        res = subprocess.run([sys.executable, "-m", "longline", *cmd], capture_output=True,
                             text=True, timeout=60, check=False)
        assert res.returncode == 2, res.stderr
        assert res.stderr.splitlines() == [
            f"{cfg}: --http: 0.0.0.0:9464 is not a loopback address: set http.token "
            '(e.g. token: "${LONGLINE_HTTP_TOKEN}") or listen on 127.0.0.1'
        ]
        assert not (tmp_path / "c.db").exists()  # refused before anything started


async def test_worker_mode_serves_the_streams_it_holds(
    provider: Provider, tmp_path: Path
) -> None:
    from longline.engine.workers import Worker
    from tests.ops.http_helpers import listening

    cfg = make_config(
        tmp_path / "w.db",
        {"name": "a", "transport": "sse", "url": provider.url("sse", "a", total=25)},
        {"name": "b", "transport": "sse", "url": provider.url("sse", "b", total=35)},
    )
    worker = Worker(cfg, worker_id="w1", lease_ttl=1.0, status_interval=0.2)
    async with listening(worker.runner) as servers:
        task = asyncio.create_task(worker.run())
        try:
            want = {"a": 25.0, "b": 35.0}
            events: dict[str, float] = {}
            for _ in range(200):
                if servers:
                    _, text, _ = await get(f"http://127.0.0.1:{servers[0].port}/metrics")
                    events = {
                        s.labels["stream"]: s.value
                        for f in text_string_to_metric_families(text)
                        if f.name == "longline_events_stored"
                        for s in f.samples
                        if s.name.endswith("_total")
                    }
                    if events == want:
                        break
                await asyncio.sleep(0.05)
            assert events == want
        finally:
            worker.stop()
            await task


async def test_readyz_names_a_stream_down_longer_than_its_backoff_allows(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "s.db", {
        "name": "nowhere", "transport": "lines", "url": "http://127.0.0.1:9/",  # refused
        "stall_timeout": "300ms", "backoff": {"initial": "50ms", "max": "200ms"},
    })
    async with running(cfg) as (runner, base, _server):
        status, body, _ = await get(base + "/readyz")
        assert status == 200, body  # reconnecting, within what its backoff allows
        for _ in range(100):
            status, body, _ = await get(base + "/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.05)
        found = orjson.loads(body)
        assert (status, list(found["streams"])) == (503, ["nowhere"])
        why = found["streams"]["nowhere"]
        assert why.startswith("no live connection for ") and "(allowed 0.5s)" in why
        assert "Cannot connect to host 127.0.0.1:9" in why
        assert runner.stats["nowhere"].state in ("connecting", "backing-off")


async def test_readyz_fails_while_the_store_refuses_writes(
    provider: Provider, tmp_path: Path
) -> None:
    db = tmp_path / "refuse.db"
    cfg = make_config(db, {"name": "a", "transport": "sse",
                           "url": provider.url("sse", "a", rate=50)})
    async with running(cfg) as (runner, base, _server):
        for _ in range(100):
            if runner.stats["a"].events > 5:
                break
            await asyncio.sleep(0.05)
        assert (await get(base + "/readyz"))[0] == 200
        holder = sqlite3.connect(db, timeout=10)
        try:
            holder.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN"
                " SELECT RAISE(ABORT, 'writes refused by the test'); END"
            )
            holder.commit()
            for _ in range(100):
                status, body, _ = await get(base + "/readyz")
                if status == 503:
                    break
                await asyncio.sleep(0.05)
            found = orjson.loads(body)
            assert (status, found["streams"]) == (503, {})
            assert found["store"].startswith("stream a: store write failed: ")
            assert "writes refused by the test" in found["store"]
            # What arrives meanwhile waits uncommitted, and the gauge says how much.
            pending = await _pending_until(base, lambda n: n >= 5)
            assert runner.writers["a"].store_error is not None
            stored = runner.stats["a"].events
            holder.execute("DROP TRIGGER refuse")
            holder.commit()
            for _ in range(200):
                status, body, _ = await get(base + "/readyz")
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert status == 200, body
            await _pending_until(base, lambda n: n == 0)  # committed: nothing waits
            assert runner.stats["a"].events >= stored + pending
        finally:
            holder.close()


async def _pending_until(base: str, check: Callable[[float], bool]) -> float:
    """``longline_pending_events`` of stream ``a``, scraped until ``check`` holds."""
    for _ in range(200):
        _, text, _ = await get(base + "/metrics")
        pending = next(
            s.value
            for f in text_string_to_metric_families(text)
            if f.name == "longline_pending_events"
            for s in f.samples
            if s.labels == {"stream": "a"}
        )
        if check(pending):
            return pending
        await asyncio.sleep(0.05)
    raise AssertionError(f"longline_pending_events stayed at {pending}")
