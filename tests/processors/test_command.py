"""``kind: command``: real subprocesses reading NDJSON on stdin; exit codes decide."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from longline.core.model import StoredEvent
from longline.processors.base import ProcessorError
from longline.processors.command import CommandProcessor
from longline.processors.registry import build_processor
from tests.processors.helpers import FAST_RETRY, caught_up, config, dispatch_until, filled_store

# Appends stdin to argv[1] (with the environment it saw), then exits with $EXIT (default 0).
SCRIPT = """
import os, sys, time
data = sys.stdin.buffer.read()
time.sleep(float(os.environ.get("SLEEP", "0")))
code = int(os.environ.get("EXIT", "0"))
if code == 0:
    with open(sys.argv[1], "ab") as f:
        f.write(data)
    with open(sys.argv[1] + ".env", "a") as f:
        f.write(os.environ["LONGLINE_PROCESSOR"] + " " + os.environ["LONGLINE_STREAM"] + "\\n")
sys.stderr.write("x" * 2000 + " the end of stderr\\n")
sys.exit(code)
"""


def command(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    script = tmp_path / "sink.py"
    script.write_text(SCRIPT)
    argv = [sys.executable, str(script), str(tmp_path / "out.ndjson")]
    return {"name": "cmd", "kind": "command", "argv": argv, **extra}


def proc(tmp_path: Path, **extra: Any) -> CommandProcessor:
    built = build_processor(config(tmp_path / "c.db", command(tmp_path, **extra)).processors[0])
    assert isinstance(built, CommandProcessor)
    return built


def lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "out.ndjson"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def events(tmp_path: Path, n: int) -> list[StoredEvent]:
    store = await filled_store(tmp_path / "e.db", n)
    try:
        return await store.read("s", 0, n)
    finally:
        await store.close()


async def test_exit_zero_delivers_ndjson_on_stdin(tmp_path: Path) -> None:
    p = proc(tmp_path)
    await p.start()
    await p.deliver("s", await events(tmp_path, 3))
    assert lines(tmp_path) == [
        {
            "stream": "s",
            "seq": i,
            "key": f"k{i}",
            "cursor": str(i),
            "received_at": float(i),
            "payload": {"id": i},
            "event": None,
        }
        for i in (1, 2, 3)
    ]
    assert (tmp_path / "out.ndjson.env").read_text() == "cmd s\n"


@pytest.mark.parametrize(("code", "permanent"), [(1, False), (3, False), (65, True)])
async def test_nonzero_exit_retries_with_stderr_tail(
    tmp_path: Path, code: int, permanent: bool
) -> None:
    p = proc(tmp_path, env={"EXIT": str(code)}, permanent_exit_codes=[65])
    with pytest.raises(ProcessorError) as info:
        await p.deliver("s", await events(tmp_path, 2))
    message = str(info.value)
    assert message.startswith(f"{sys.executable} failed (exit {code}): xxx")
    assert message.endswith("x the end of stderr")
    assert len(message) < 600
    assert info.value.permanent is permanent
    assert lines(tmp_path) == []


async def test_timeout_kills_the_command(tmp_path: Path) -> None:
    p = proc(tmp_path, env={"SLEEP": "30"}, timeout="300ms")
    with pytest.raises(ProcessorError, match=r"timed out after 0.3s") as info:
        await p.deliver("s", await events(tmp_path, 1))
    assert not info.value.permanent


async def test_missing_program_cannot_start(tmp_path: Path) -> None:
    cfg = config(tmp_path / "c.db", {"name": "c", "kind": "command", "argv": ["no-such-prog-x"]})
    with pytest.raises(ProcessorError, match="command not found: no-such-prog-x") as info:
        await build_processor(cfg.processors[0]).start()
    assert info.value.permanent


async def test_dispatch_retries_a_failing_command_then_delivers_in_order(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    store = await filled_store(db, 30)
    flag = tmp_path / "fail-once"
    flag.write_text("")
    # The command fails while the flag file exists, and removes it: one failure, then OK.
    script = tmp_path / "once.py"
    script.write_text(
        "import os, sys\n"
        f"flag = {str(flag)!r}\n"
        "data = sys.stdin.buffer.read()\n"
        "if os.path.exists(flag):\n"
        "    os.remove(flag); sys.stderr.write('not yet'); sys.exit(1)\n"
        f"open({str(tmp_path / 'out.ndjson')!r}, 'ab').write(data)\n"
    )
    entry = {
        "name": "cmd",
        "kind": "command",
        "argv": [sys.executable, str(script)],
        "batch": 8,
        "retry": FAST_RETRY,
    }
    try:
        d = await dispatch_until(config(db, entry), store, caught_up(30))
    finally:
        await store.close()
    assert [e["seq"] for e in lines(tmp_path)] == list(range(1, 31))
    stats = d.stats["cmd", "s"]
    assert (stats.delivered, stats.dead, stats.retries) == (30, 0, 1)
    assert stats.last_error == f"{sys.executable} failed (exit 1): not yet"
