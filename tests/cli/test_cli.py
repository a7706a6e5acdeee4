"""The command line as a user runs it: real subprocesses, real provider, real SQLite file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from longline.testing.provider import Provider, event_bytes

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
DUMMY_ENV = {
    "X_BEARER_TOKEN": "x",
    "WIKI_TOKEN": "w",
    "COINBASE_JWT": "c",
    "SLACK_APP_TOKEN": "xapp-1-s",
    "TWITCH_CLIENT_ID": "t",
    "TWITCH_TOKEN": "t",
    "DISCORD_BOT_TOKEN": "d",
}


def longline(*args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "longline", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, check=False)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_check_accepts_every_example(example: Path) -> None:
    res = longline("check", str(example), env=DUMMY_ENV)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{example}: ok: 1 stream(s)")


def test_check_names_the_field_and_exits_2_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"streams": [
        {"name": "a", "transport": "sse", "url": "http://127.0.0.1/"},
        {"name": "b", "transport": "ws", "url": "ws://127.0.0.1/"},
        {"name": "c", "transport": "carrier-pigeon", "url": "http://127.0.0.1/"},
    ]}))
    res = longline("check", str(cfg))
    assert res.returncode == 2
    assert "streams[2].transport:" in res.stderr
    assert "Traceback" not in res.stderr


def test_secret_never_reaches_errors_or_logs(tmp_path: Path) -> None:
    secret = "s3cr3t-t0ken-value"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'x.db'}", "streams": [
        {"name": "a", "transport": "lines", "url": "http://127.0.0.1:9/feed?token=${TOKEN}",
         "headers": {"Authorization": "Bearer ${TOKEN}"}, "stall_timeout": "zzz"}]}))
    res = longline("check", str(cfg), env={"TOKEN": secret})
    assert res.returncode == 2
    assert "streams[0].stall_timeout" in res.stderr
    assert secret not in res.stderr + res.stdout
    # A run against a closed port logs connection errors at DEBUG: still no secret.
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'x.db'}", "streams": [
        {"name": "a", "transport": "lines", "url": "http://127.0.0.1:9/feed?token=${TOKEN}",
         "headers": {"Authorization": "Bearer ${TOKEN}"},
         "backoff": {"initial": "50ms", "max": "100ms"}}]}))
    res = longline("--log-level", "DEBUG", "run", str(cfg), "--duration", "1.5",
                   env={"TOKEN": secret})
    assert res.returncode == 0, res.stderr
    assert "connection ended" in res.stderr
    assert secret not in res.stderr + res.stdout
    status = longline("status", str(cfg), "--json", env={"TOKEN": secret})
    assert secret not in status.stdout


async def _run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_then_events_and_status(provider: Provider, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 'e.db'}", "streams": [
        {"name": "wiki", "transport": "sse", "key": "$.id",
         "url": provider.url("sse", "w", total=50, malformed_every=20)}]}))
    code, _, err = await _run_cli("run", str(cfg), "--duration", "2")
    assert code == 0, err
    code, out, err = await _run_cli("events", str(cfg), "--stream", "wiki", "--after", "40")
    assert code == 0, err
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == list(range(41, 51))
    first = rows[0]
    assert set(first) == {"seq", "key", "cursor", "received_at", "payload", "event"}
    assert first["event"] == "tick"
    assert first["key"] == "41" and first["cursor"] == "41"
    assert first["payload"] == orjson.loads(event_bytes("w", 41))
    code, out, _ = await _run_cli("events", str(cfg), "--stream", "wiki", "--limit", "3")
    assert [orjson.loads(x)["seq"] for x in out.splitlines()] == [1, 2, 3]
    code, out, _ = await _run_cli("events", str(cfg), "--stream", "wiki", "--quarantined")
    reasons = [orjson.loads(x)["reason"] for x in out.splitlines()]
    assert len(reasons) == 2 and all(r.startswith("invalid JSON") for r in reasons)
    code, out, _ = await _run_cli("status", str(cfg), "--json")
    st = orjson.loads(out)["streams"]["wiki"]
    assert (st["state"], st["events"], st["quarantined"], st["cursor"]) == ("stopped", 50, 2, "50")
    code, _, err = await _run_cli("events", str(cfg), "--stream", "nope")
    assert code == 2 and "--stream" in err


async def test_status_while_running_and_after_sigkill(provider: Provider, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 's.db'}", "streams": [
        {"name": "live", "transport": "lines", "key": "$.id",
         "url": provider.url("lines", "s", rate=100)}]}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "run", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        st: dict[str, object] = {}
        for _ in range(50):
            await asyncio.sleep(0.2)
            code, out, _ = await _run_cli("status", str(cfg), "--json")
            if code != 0:  # `run` has not created the store yet; status never creates one
                continue
            st = orjson.loads(out)["streams"]["live"]
            if st["state"] == "live" and int(st["events"]) > 0:  # type: ignore[call-overload]
                break
        assert st["state"] == "live"
    finally:
        proc.kill()
        await proc.wait()
    code, out, _ = await _run_cli("status", str(cfg), "--json")
    assert code == 0
    assert orjson.loads(out)["streams"]["live"]["state"] == "dead"


def test_demo_verifies(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "longline", "demo", "--duration", "12",
                          "--db", str(tmp_path / "demo.db")], capture_output=True, text=True,
                         timeout=60, check=False, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verified: 3 streams" in res.stdout
    assert " 0 gaps, 0 doubled" in res.stdout
