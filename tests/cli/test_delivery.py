"""`longline dispatch`, `deadletters` (list, --retry) and `replay` with a real command processor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml
from click.testing import CliRunner, Result

from longline.cli import main
from tests.processors.helpers import DUMMY_URL, filled_store

# Refuses (exit 65) a batch holding an id listed in the poison file; else appends it to out.
SCRIPT = """
import json, sys
out, poison_file = sys.argv[1], sys.argv[2]
lines = sys.stdin.buffer.read().splitlines()
try:
    poison = set(json.load(open(poison_file)))
except FileNotFoundError:
    poison = set()
if any(json.loads(x)["payload"]["id"] in poison for x in lines):
    sys.stderr.write("poison"); sys.exit(65)
with open(out, "ab") as f:
    f.write(b"".join(x + b"\\n" for x in lines))
"""


def setup(tmp_path: Path, n: int, poison: list[int]) -> Path:
    db = tmp_path / "c.db"

    async def fill() -> None:
        store = await filled_store(db, n)
        await store.close()

    asyncio.run(fill())
    (tmp_path / "sink.py").write_text(SCRIPT)
    (tmp_path / "poison.json").write_text(orjson.dumps(poison).decode())
    argv = [
        sys.executable,
        str(tmp_path / "sink.py"),
        str(tmp_path / "out"),
        str(tmp_path / "poison.json"),
    ]
    cfg = {
        "store": f"sqlite:///{db}",
        "streams": [{"name": "s", "transport": "sse", "url": DUMMY_URL}],
        "processors": [
            {
                "name": "cmd",
                "kind": "command",
                "argv": argv,
                "batch": 5,
                "permanent_exit_codes": [65],
                "retry": {"initial": "5ms", "max": "10ms"},
            }
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["--log-level", "ERROR", *args])


def out_seqs(tmp_path: Path) -> list[int]:
    return [orjson.loads(x)["seq"] for x in (tmp_path / "out").read_bytes().splitlines()]


def ndjson(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in text.splitlines()]


def test_dead_letters_listed_retried_and_replay(tmp_path: Path) -> None:
    cfg = setup(tmp_path, 20, poison=[4, 17])
    r = cli("dispatch", str(cfg), "--duration", "6")
    assert r.exit_code == 0, r.output
    assert out_seqs(tmp_path) == [i for i in range(1, 21) if i not in (4, 17)]

    r = cli("deadletters", str(cfg))
    assert r.exit_code == 0
    rows = ndjson(r.stdout)
    assert [(d["id"], d["processor"], d["stream"], d["seq"], d["key"]) for d in rows] == [
        (1, "cmd", "s", 4, "k4"),
        (2, "cmd", "s", 17, "k17"),
    ]
    assert {d["error"] for d in rows} == {f"{sys.executable} failed (exit 65): poison"}
    assert {d["attempts"] for d in rows} == {1}

    # 17 is still poison: 4 is re-delivered and dropped, 17 stays with one more attempt.
    (tmp_path / "poison.json").write_text("[17]")
    r = cli("deadletters", str(cfg), "--retry")
    assert r.exit_code == 1
    assert r.stderr.strip() == "dead letters: 1 delivered, 1 failed"
    assert [(f["seq"], f["processor"]) for f in ndjson(r.stdout)] == [(17, "cmd")]
    assert [(d["seq"], d["attempts"]) for d in ndjson(cli("deadletters", str(cfg)).stdout)] == [
        (17, 2)
    ]

    (tmp_path / "poison.json").write_text("[]")
    r = cli("deadletters", str(cfg), "--processor", "cmd", "--retry")
    assert (r.exit_code, r.stderr.strip()) == (0, "dead letters: 1 delivered, 0 failed")
    assert cli("deadletters", str(cfg)).stdout == ""
    assert out_seqs(tmp_path)[-2:] == [4, 17]

    before = len(out_seqs(tmp_path))
    r = cli("replay", str(cfg), "--processor", "cmd", "--stream", "s", "--from-seq", "3",
            "--to-seq", "12")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == "replay of s to cmd: 10 delivered, 0 failed"
    assert out_seqs(tmp_path)[before:] == list(range(3, 13))


def test_bad_requests_exit_2(tmp_path: Path) -> None:
    cfg = setup(tmp_path, 1, poison=[])
    r = cli("deadletters", str(cfg), "--processor", "nope")
    assert r.exit_code == 2
    assert "no processor named 'nope' in the config (processors: cmd)" in r.stderr
    r = cli("replay", str(cfg), "--processor", "cmd", "--stream", "x", "--from-seq", "1")
    assert r.exit_code == 2 and "does not read stream 'x'" in r.stderr
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        yaml.safe_dump({"streams": [{"name": "s", "transport": "sse", "url": DUMMY_URL}]})
    )
    r = cli("dispatch", str(bare))
    assert r.exit_code == 2 and "no processors configured" in r.stderr
