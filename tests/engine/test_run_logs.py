"""What `longline run` says at INFO, as a user sees it: a real subprocess, the local provider.

One line per stream when it connects (URL without its query, where it resumed), a summary per
stream every ``log_summary_interval``, a final summary at exit; and the log level from
``--log-level`` (before or after the subcommand) or ``LONGLINE_LOG_LEVEL``.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from longline.testing.provider import Provider

LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<msg>.*)$")


async def longline(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    """Exit code, stdout, and the log messages (level and logger stripped) of one command."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LONGLINE_LOG_LEVEL": "", **(env or {})},
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    lines = err.decode().splitlines()
    assert all(LINE.match(x) for x in lines), lines
    messages = [f"{m['level']} {m['msg']}" for x in lines if (m := LINE.match(x))]
    return proc.returncode, out.decode(), messages


def write(tmp_path: Path, provider: Provider, **top: Any) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{tmp_path / 'e.db'}",
                **top,
                "streams": [
                    {"name": "a", "transport": "sse", "url": provider.url("sse", "a", rate=40)},
                    {"name": "b", "transport": "lines", "key": "$.id",
                     "url": provider.url("lines", "b", rate=20)},
                ],
            }
        )
    )  # fmt: skip
    return cfg


async def stored(cfg: Path) -> dict[str, Any]:
    code, out, _ = await longline("status", str(cfg), "--json")
    assert code == 0
    streams: dict[str, Any] = orjson.loads(out)["streams"]
    return streams


async def test_connect_lines_periodic_and_final_summaries(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = write(tmp_path, provider, log_summary_interval="500ms")
    # The level after the subcommand beats the environment's.
    code, _, logs = await longline(
        "run", str(cfg), "--duration", "1.7s", "--log-level", "info",
        env={"LONGLINE_LOG_LEVEL": "ERROR"},
    )  # fmt: skip
    assert code == 0, logs
    base = f"http://127.0.0.1:{provider.port}"
    assert sorted(x for x in logs if "connected to" in x) == [
        f"INFO stream a: connected to {base}/sse/a?… (no checkpoint yet)",
        f"INFO stream b: connected to {base}/lines/b?… (resume: none)",
    ]
    periodic = re.compile(
        r"INFO stream (a|b): live, last 500ms: [\d.]+ events/s, (\d+) events, 0 duplicates, "
        r"0 quarantined, 0 reconnects"
    )
    ticks = [m for x in logs if (m := periodic.fullmatch(x))]
    assert 2 <= sum(m[1] == "a" for m in ticks) <= 3 and 2 <= sum(m[1] == "b" for m in ticks) <= 3
    totals = [x for x in logs if x.startswith("INFO run, last 500ms: 2 streams (2 live): ")]
    assert 2 <= len(totals) <= 3
    final = re.compile(
        r"INFO stream (a|b): stopped after (?:1\.[7-9]|2(?:\.\d)?)s: [\d.]+ events/s, "
        r"(\d+) events, 0 duplicates, "
        r"0 quarantined, 0 reconnects"
    )
    ends = {m[1]: int(m[2]) for x in logs if (m := final.fullmatch(x))}
    st = await stored(cfg)
    assert ends == {"a": st["a"]["events"], "b": st["b"]["events"]} and min(ends.values()) > 0
    # Per-interval counts add up to at most the final count (the rest came after the last tick).
    assert sum(int(m[2]) for m in ticks if m[1] == "a") <= ends["a"]
    ended = r"INFO run ended after (?:1\.[7-9]|2(?:\.\d)?)s: 2 streams \(0 live\): "
    assert re.match(ended, logs[-3])
    assert not [x for x in logs if not x.startswith("INFO")]

    # The next run says where it resumed, and with interval 0 logs only the final summary.
    cfg = write(tmp_path, provider, log_summary_interval=0)
    code, _, logs = await longline("--log-level", "INFO", "run", str(cfg), "--duration", "800ms")
    assert code == 0, logs
    resumed = f"(resumed after cursor '{st['a']['cursor']}')"
    assert f"INFO stream a: connected to {base}/sse/a?… {resumed}" in logs
    assert not [x for x in logs if ", last " in x]
    assert sum(bool(re.search(r" stopped after (800ms|900ms|1(\.\d)?s): ", x)) for x in logs) == 2


async def test_log_level_from_the_environment_and_either_side(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = write(tmp_path, provider, log_summary_interval="200ms")
    quiet = await longline("run", str(cfg), "--duration", "0.5",
                           env={"LONGLINE_LOG_LEVEL": "warning"})  # fmt: skip
    assert quiet == (0, "", [])
    quiet = await longline("--log-level", "Warning", "run", str(cfg), "--duration", "0.5")
    assert quiet == (0, "", [])
    code, _, logs = await longline("--log-level", "error", "run", str(cfg), "--duration", "0.5",
                                   "--log-level", "DEBUG")  # fmt: skip
    assert code == 0 and any(x.startswith("DEBUG ") for x in logs)
    code, _, logs = await longline("run", str(cfg), "--duration", "0.5")  # default INFO
    assert code == 0 and any(" connected to " in x for x in logs)
    assert not any(x.startswith("DEBUG ") for x in logs)
    for args, env, where in [
        (["run", str(cfg), "--log-level", "loud"], {}, "'--log-level'"),
        (
            ["run", str(cfg)],
            {"LONGLINE_LOG_LEVEL": "loud"},
            "'--log-level' (env var: 'LONGLINE_LOG_LEVEL')",
        ),
    ]:
        res = subprocess.run(
            [sys.executable, "-m", "longline", *args],
            capture_output=True, text=True, env={**os.environ, **env}, timeout=30, check=False,
        )  # fmt: skip
        assert res.returncode == 2
        assert res.stderr.splitlines()[-1] == (
            f"Error: Invalid value for {where}: 'loud' is not one of "
            "'debug', 'info', 'warning', 'error'."
        )
