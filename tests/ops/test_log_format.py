"""``--log-format json`` / ``LONGLINE_LOG_FORMAT`` on a real ``longline run`` against the local
provider: every stderr line is one JSON object with ts, level, logger, msg and the context
fields where they apply, and a canary secret sent in a header never appears. Text lines stay the
default (and win over the environment when asked for on the command line)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.testing.provider import Provider

CANARY = "canary-7c1d5e9a0b3f"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


def write_config(tmp_path: Path, provider: Provider) -> Path:
    auth = {"Authorization": f"Bearer {CANARY}"}
    cfg = tmp_path / "j.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path}/j.db",
        "streams": [
            {"name": "flaky", "transport": "lines", "key": "$.id", "headers": auth,
             "cursor": "$.id", "resume": {"query": "since"},
             "backoff": {"initial": "50ms", "max": "200ms"},
             "url": provider.url("lines", f"flaky-{tmp_path.name}", rate=200,
                                 disconnect_every=20, since=0)},
            {"name": "denied", "transport": "lines", "headers": auth,
             "backoff": {"initial": "50ms", "max": "200ms"},
             "url": provider.url("lines", f"denied-{tmp_path.name}", status=401)},
        ],
    }))  # fmt: skip
    return cfg


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def json_lines(err: str) -> list[dict[str, Any]]:
    entries = [orjson.loads(line) for line in err.splitlines()]  # every line, or it raises
    for e in entries:
        assert {"ts", "level", "logger", "msg"} <= set(e), e
        assert e["ts"].endswith("Z") and datetime.fromisoformat(e["ts"]).tzinfo is not None
        assert e["level"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
    return entries


async def test_json_logs_of_a_run(provider: Provider, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, provider)
    code, err = await run("--log-format", "json", "--log-level", "DEBUG",
                          "run", str(cfg), "--duration", "2")  # fmt: skip
    assert code == 1  # the 401 stream failed
    assert CANARY not in err
    entries = json_lines(err)
    assert len(entries) >= 3
    reconnects = [e for e in entries if e.get("stream") == "flaky" and e.get("cause")]
    assert reconnects and all(e["cause"] == "closed" for e in reconnects), reconnects
    assert all(e["level"] == "WARNING" and "reconnecting" in e["msg"] for e in reconnects)
    denied = [e for e in entries if e.get("stream") == "denied"]
    assert all(e["cause"] == "refused" for e in denied), denied
    (gave_up,) = [e for e in denied if e["level"] == "ERROR"]
    assert gave_up["logger"] == "longline.engine.supervisor"
    assert "HTTP 401" in gave_up["msg"]
    assert "stream denied failed" in entries[-1]["msg"]  # the final line too is JSON
    connects = [e for e in entries if e["msg"].startswith("stream flaky: connected to ")]
    assert connects and all(e["stream"] == "flaky" and e["level"] == "INFO" for e in connects)
    resumed = [e for e in connects if "cursor" in e]  # every reconnect resumes after one
    assert len(resumed) >= len(reconnects) - 1 and resumed
    assert all(f"resumed after cursor '{e['cursor']}'" in e["msg"] for e in resumed)


async def test_environment_asks_for_json_and_the_flag_after_the_subcommand_wins(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, provider)
    env = {"LONGLINE_LOG_FORMAT": "json"}
    code, err = await run("run", str(cfg), "--duration", "2", env=env)
    assert code == 1 and CANARY not in err
    assert json_lines(err)
    code, err = await run("run", str(cfg), "--duration", "2", "--log-format", "text", env=env)
    assert code == 1 and CANARY not in err
    lines = err.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    code, err = await run("run", str(cfg), "--duration", "2")  # default: text
    assert code == 1 and CANARY not in err
    assert all(TEXT_LINE.match(line) for line in err.splitlines())
