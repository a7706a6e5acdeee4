"""Deployment files: the Kubernetes manifests pass a schema validator (offline schemas, strict:
unknown fields refused), the Grafana dashboard is valid JSON whose queries name only metrics that
``/metrics`` exports, the Dockerfile's health check command really probes, and the systemd unit
passes ``systemd-analyze verify``."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from longline.config import loads_config
from longline.ops.listen import listen_settings
from longline.testing.provider import Provider
from tests.services import service_missing

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
DASHBOARD = ROOT / "deploy" / "grafana" / "longline.json"

# What issue 12 asks /metrics to export (counters end in _total, the histogram has
# _bucket/_sum/_count series, the build info is an info metric); the scrape must have them all.
COUNTERS = (
    "events_stored", "duplicates", "quarantined", "reconnects", "bytes_received",
    "processor_delivered", "dead_letters",
)  # fmt: skip
GAUGES = (
    "connections", "stream_up", "last_event_timestamp_seconds", "pending_events",
    "processor_lag_events",
)  # fmt: skip
ISSUE_METRICS = (
    {f"longline_{c}_total" for c in COUNTERS}
    | {f"longline_{g}" for g in GAUGES}
    | {f"longline_commit_seconds_{s}" for s in ("bucket", "sum", "count")}
    | {"longline_build_info"}
)
SERIES = {  # the series names a family of each type exports
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def by_kind() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for _, doc in manifests()}


@pytest.fixture(scope="module")
def validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        service_missing("kubernetes-validate is not installed (pip install -e '.[test]')")
    version = kubernetes_validate.latest_version()

    def check(doc: dict[str, Any]) -> None:
        kubernetes_validate.validate(doc, version, strict=True)

    return check


def test_kubernetes_manifests_validate_strictly(validate: Any) -> None:
    kinds = sorted(doc["kind"] for _, doc in manifests())
    assert kinds == ["ConfigMap", "Secret", "Service", "StatefulSet"]
    for _, doc in manifests():
        validate(doc)


def test_the_validator_refuses_what_kubernetes_would(validate: Any) -> None:
    import kubernetes_validate

    sts = by_kind()["StatefulSet"]
    typo = copy.deepcopy(sts)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    wrong_type = copy.deepcopy(sts)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(bad)


def test_kubernetes_pieces_fit_together() -> None:
    kinds = by_kind()
    sts, cm, secret, svc = (kinds[k] for k in ("StatefulSet", "ConfigMap", "Secret", "Service"))
    pod = sts["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    port = int(annotations["prometheus.io/port"])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert f"http://127.0.0.1:{port}/readyz" in probe and "LONGLINE_HTTP_TOKEN" in probe
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    (volume,) = pod["spec"]["volumes"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert "subPath" not in mount  # an edited ConfigMap must reach the file (SIGHUP reload)
    assert container["args"] == ["run", f"{mount['mountPath']}/{next(iter(cm['data']))}"]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    # The config is valid for longline itself, with the Secret's variables set.
    env = {k: v or "x" for k, v in secret["stringData"].items()}
    config = loads_config(cm["data"]["longline.yaml"], "configmap.yaml", env)
    listen = listen_settings(config, None)
    assert listen is not None and (listen.host, listen.port) == ("0.0.0.0", port)
    assert listen.token == env["LONGLINE_HTTP_TOKEN"]  # beyond loopback: a token is required
    raw = yaml.safe_load(cm["data"]["longline.yaml"])
    assert raw["http"]["token"] == "${LONGLINE_HTTP_TOKEN}"
    assert config.store.startswith("sqlite:////data/")  # on the claimed volume
    data = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert data["mountPath"] == "/data"


def dashboard_queries(node: object) -> Iterator[str]:
    """Every PromQL text in the dashboard: targets' ``expr``, variables' ``query``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


async def scraped_series(provider: Provider, tmp_path: Path) -> set[str]:
    """The series names a real ``longline run --http`` exports, with a stream and a processor
    (families without samples yet count too: their type says which series they will have)."""
    from tests.ops.test_http_cli import start

    cfg = tmp_path / "g.yaml"
    sink = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'g.db'}",
        "streams": [{"name": "s", "transport": "lines", "key": "$.id",
                     "url": provider.url("lines", "grafana", total=50)}],
        "processors": [{"name": "p", "kind": "command", "argv": sink}],
    }))  # fmt: skip
    proc, port, _ = await start("run", str(cfg), "--http", "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    families = list(text_string_to_metric_families(await resp.text()))
                stored = [f for f in families if f.name == "longline_events_stored"]
                if stored and stored[0].samples:
                    break
                await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    return {f.name + suffix for f in families for suffix in SERIES.get(f.type, ("",))}


async def test_grafana_dashboard_names_only_exported_metrics(
    provider: Provider, tmp_path: Path
) -> None:
    exported = await scraped_series(provider, tmp_path)
    assert exported >= ISSUE_METRICS, sorted(ISSUE_METRICS - exported)
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] == "longline" and dash["panels"]
    queries = list(dashboard_queries(dash))
    named = {m for q in queries for m in re.findall(r"\blongline_[a-z_]+", q)}
    assert named <= exported, sorted(named - exported)
    # The views the dashboard exists for.
    assert any("rate(longline_events_stored_total" in q and "by (stream)" in q for q in queries)
    assert any("longline_reconnects_total" in q and "by (cause)" in q for q in queries)
    quantiles = {q for q in queries if "histogram_quantile" in q}
    assert all("longline_commit_seconds_bucket" in q for q in quantiles) and len(quantiles) >= 3
    assert any("longline_processor_lag_events" in q for q in queries)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def healthcheck_command() -> list[str]:
    """The exec form of the Dockerfile's HEALTHCHECK CMD (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK")]
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return command


async def probe(url: str) -> int:
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**os.environ, "LONGLINE_HEALTH_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(proc.wait(), 20)


async def test_the_docker_health_check_probes_healthz_for_real() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENV LONGLINE_HEALTH_URL=http://127.0.0.1:9464/healthz" in dockerfile
    assert 'CMD ["run", "/config/longline.yaml", "--http", "127.0.0.1:9464"]' in dockerfile
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(status=status["code"], text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        assert await probe(url) == 0
        status["code"] = 503
        assert await probe(url) != 0
    finally:
        await runner.cleanup()
    assert await probe(url) != 0  # nothing listening


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        service_missing("systemd-analyze is not installed")
    text = (ROOT / "deploy" / "systemd" / "longline.service").read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30",
                 "ExecReload=/bin/kill -HUP $MAINPID"):  # fmt: skip
        assert line in text.splitlines()
    # verify wants ExecStart's binary to exist: point it at one that does.
    unit = tmp_path / "longline.service"
    unit.write_text(text.replace("/opt/longline/bin/longline", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [ln for ln in done.stderr.splitlines() if "longline.service" in ln]
    assert done.returncode == 0 and not problems, done.stderr
