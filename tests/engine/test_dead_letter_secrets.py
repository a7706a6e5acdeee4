"""A processor whose error quotes a secret: the secret is in no dead letter, no log line, no row
of the store; a refused backlog logs one summary line per batch; dispatch says what it did.

Real subprocesses (`longline dispatch`, `longline deadletters`), a real command processor that
echoes a ``${VAR}`` token to stderr and fails, a real SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from longline.core.secrets import REDACTED
from tests.processors.helpers import DUMMY_URL, filled_store

TOKEN = "tok-9f8e7d6c5b4a"
N = 84


def longline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "API_TOKEN": TOKEN, "LONGLINE_LOG_LEVEL": ""}
    return subprocess.run(
        [sys.executable, "-m", "longline", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def setup(tmp_path: Path, **top: object) -> tuple[Path, Path]:
    db = tmp_path / "d.db"

    async def fill() -> None:
        store = await filled_store(db, N)
        await store.close()

    asyncio.run(fill())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{db}",
                **top,
                "streams": [{"name": "s", "transport": "sse", "url": DUMMY_URL}],
                "processors": [
                    {
                        "name": "cmd",
                        "kind": "command",
                        # Echoes the token it was given, then refuses the batch for good.
                        "argv": ["sh", "-c", 'echo "401 for token $API_TOKEN" >&2; exit 65'],
                        "env": {"API_TOKEN": "${API_TOKEN}"},
                        "permanent_exit_codes": [65],
                        "batch": 100,
                    }
                ],
            }
        )
    )
    return cfg, db


def store_text(db: Path) -> str:
    """Every text value of every table (dead letters, status, events...)."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables]
    finally:
        con.close()
    return "\n".join(rows)


def test_secret_in_a_processor_error_is_never_stored_printed_or_logged(tmp_path: Path) -> None:
    cfg, db = setup(tmp_path, log_summary_interval=0)
    res = longline("dispatch", str(cfg), "--duration", "3s")
    assert res.returncode == 0, res.stderr
    assert TOKEN not in res.stderr + res.stdout
    logs = [x.split(": ", 1)[1] for x in res.stderr.splitlines()]
    # The whole refused backlog: one line for the batch, not one per event.
    assert [x for x in logs if "dead-lettered" in x and "processor cmd:" not in x] == [
        f"processor cmd dead-lettered {N} event(s) of s, seq 1..{N}, after up to 1 attempt(s): "
        f"sh failed (exit 65): 401 for token {REDACTED}"
    ]
    assert logs[:2] == [
        "processor cmd (command) started: delivering stream s",
        f"processor cmd dead-lettered {N} event(s) of s, seq 1..{N}, after up to 1 attempt(s): "
        f"sh failed (exit 65): 401 for token {REDACTED}",
    ]
    assert len(logs) == 3 and re.fullmatch(
        rf"processor cmd: stopped after 3(\.\d)?s: 0 delivered, 0 failed attempts, "
        rf"{N} dead-lettered",
        logs[2],
    )

    res = longline("deadletters", str(cfg))
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, N + 1))
    assert {r["error"] for r in rows} == {f"sh failed (exit 65): 401 for token {REDACTED}"}
    assert TOKEN not in res.stdout + res.stderr
    text = store_text(db)
    assert TOKEN not in text and text.count(f"401 for token {REDACTED}") == N

    # A retry that fails again stores the new error redacted too, and prints it redacted.
    res = longline("deadletters", str(cfg), "--retry")
    assert res.returncode == 1
    assert TOKEN not in res.stdout + res.stderr + store_text(db)
    assert {orjson.loads(x)["error"] for x in res.stdout.splitlines()} == {
        f"sh failed (exit 65): 401 for token {REDACTED}"
    }
    res = longline("replay", str(cfg), "--processor", "cmd", "--stream", "s", "--from-seq", "1",
                   "--to-seq", "3")  # fmt: skip
    assert res.returncode == 1 and TOKEN not in res.stdout + res.stderr
    assert [orjson.loads(x)["seq"] for x in res.stdout.splitlines()] == [1, 2, 3]


def test_dispatch_periodic_summary(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path, log_summary_interval="500ms")
    res = longline("dispatch", str(cfg), "--duration", "3s", "--log-level", "info")
    assert res.returncode == 0, res.stderr
    logs = [x.split(": ", 1)[1] for x in res.stderr.splitlines()]
    tick = re.compile(
        r"processor cmd: last 500ms: 0 delivered, 0 failed attempts, (\d+) dead-lettered"
    )
    ticks = [int(m[1]) for x in logs if (m := tick.fullmatch(x))]
    # Each tick counts what happened since the previous one; the backlog is done well before
    # the end, so the ticks add up to it and the last ones saw nothing new.
    assert 4 <= len(ticks) <= 6 and sum(ticks) == N and ticks[-1] == 0
    assert re.fullmatch(
        rf"processor cmd: stopped after 3(\.\d)?s: 0 delivered, 0 failed attempts, "
        rf"{N} dead-lettered",
        logs[-1],
    )


async def test_command_stderr_is_redacted_before_it_is_cut() -> None:
    """The error keeps the last 500 characters of stderr: a cut through a secret must not
    leave its tail behind (a piece no redactor recognises)."""
    from longline.core.secrets import add_secrets
    from longline.processors.base import ProcessorError
    from longline.processors.command import CommandProcessor, CommandSettings

    secret = "cut-9a8b7c6d5e4f"
    add_secrets([secret])  # what `longline dispatch` registers from the config
    script = f"import sys; sys.stderr.write('A' * 50 + {secret!r} + 'B' * 494); sys.exit(3)"
    proc = CommandProcessor(
        CommandSettings(name="c", kind="command", argv=[sys.executable, "-c", script])
    )
    await proc.start()
    try:
        await proc.deliver("s", [])
    except ProcessorError as exc:
        message = str(exc)
    assert message.endswith("B" * 494)
    assert secret[-6:] not in message and message.endswith(REDACTED[-3:] + "B" * 494)
