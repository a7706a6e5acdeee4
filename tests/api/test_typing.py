"""The API is typed for its users: ``py.typed`` ships, and ``mypy --strict`` accepts a user
script written against it, and rejects one that misuses it (so the types are real, not Any)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import longline

GOOD = '''
from __future__ import annotations

import longline

app = longline.App(store="sqlite:///capture.db", writer={"batch_max": 500})
app.stream("wiki", transport="sse", url="https://example.invalid/sse", key="$.meta.id",
           stall_timeout="30s", backoff={"initial": 0.5, "max": "30s"}, redundancy=2)
app2 = longline.App.from_config("my.yaml")


@app.processor(streams=["wiki"], batch=50, retry={"max_attempts": 3})
async def index(events: list[longline.Event]) -> None:
    for event in events:
        seq: int = event.seq
        kind: str | None = event.event_type
        print(seq, kind, event.payload, event.stream, event.key, event.cursor)


@app.processor
def count(events: list[longline.Event]) -> None:
    print(len(events))


async def main() -> None:
    await app.add_stream("more", transport="ws", url="wss://example.invalid/ws",
                         subscribe=['{"op": "subscribe"}'], max_lifetime="1h")
    stopped: longline.StreamStatus = await app.stop_stream("more")
    status: longline.Status = app.status()
    print(stopped.events, status.running, status.lanes[("index", "wiki")].cursor)
    async for event in app.events("wiki", after=10, follow=True):
        print(event.seq)
        break
    async with app.running():
        pass
    final: longline.Status = await app.serve(duration=1.0, capture=False)
    print(final)


last: longline.Status = app.run(duration=1.0)
'''

BAD = '''
import longline

app = longline.App()
app.stream("x", transport="sse", url="https://h/", stall_timout=3)
app.stream("y", transport="sse", url="https://h/", redundancy="two")


@app.processor
def wrong(events: list[int]) -> None: ...


async def read() -> None:
    async for event in app.events("x"):
        name: int = event.stream
'''


@pytest.mark.slow
def test_mypy_strict_accepts_a_user_script_and_rejects_misuse(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    # The package under test (this checkout), followed silently: only the scripts' errors.
    src = Path(longline.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), "good.py", "bad.py"],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(src)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if e.startswith("good.py")], result.stdout
    assert [e.split(":")[1] for e in errors] == ["5", "6", "9", "15"], result.stdout
    assert '"stall_timout"' in errors[0] and "stall_timeout" in errors[0]
    assert '"redundancy"' in errors[1]
    assert "list[int]" in errors[2]
    assert '"str", variable has type "int"' in errors[3]


def test_py_typed_ships_with_the_package() -> None:
    assert (Path(longline.__file__).parent / "py.typed").is_file()
