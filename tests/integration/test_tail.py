"""``longline tail --follow`` in its own process while ``longline run`` captures, on SQLite
(polling) and PostgreSQL (LISTEN/NOTIFY): every event printed once, in seq order per stream, in
the shape of ``longline events``; Ctrl-C ends it with exit 0 and nothing on stderr."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.testing.provider import Provider, event_bytes

SLACK = 30.0
TOTAL = 300


async def longline(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), SLACK)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_config(path: Path, store: str, provider: Provider, total: int = TOTAL) -> None:
    streams = [
        {
            "name": name, "transport": "lines", "key": "$.id", "cursor": "$.id",
            "resume": {"query": "since"},
            "url": provider.url("lines", f"{name}-{path.stem}", since=0, total=total, rate=200),
            "backoff": {"initial": "50ms", "max": "500ms"},
        }
        for name in ("a", "b")
    ]  # fmt: skip
    doc = {"store": store, "streams": streams, "shutdown_timeout": "20s"}
    path.write_text(yaml.safe_dump(doc))


class Tail:
    """A ``longline tail`` process whose stdout lines are parsed as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.rows: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.rows.append(orjson.loads(line))

    async def wait_rows(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLACK
        while len(self.rows) < n:
            assert self.proc.returncode is None, "tail ended early"
            assert loop.time() < deadline, f"only {len(self.rows)} of {n} rows"
            await asyncio.sleep(0.05)

    async def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.proc.wait(), SLACK)
        await self._reader
        assert self.proc.stderr is not None
        return code, (await self.proc.stderr.read()).decode()


async def start_tail(*args: str) -> Tail:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "tail", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return Tail(proc)


async def follow_while_running(
    provider: Provider, cfg: Path, store: str, total: int = TOTAL
) -> None:
    write_config(cfg, store, provider, total)
    assert (await longline("init", str(cfg)))[0] == 0
    tail = await start_tail(str(cfg), "--follow", "--after", "0")
    only_b = await start_tail(str(cfg), "--follow", "--stream", "b", "--after", "0")
    try:
        await asyncio.sleep(1.0)  # both are following an empty store
        assert tail.rows == [] and only_b.rows == []
        code, _, err = await longline("run", str(cfg), "--duration", "2.5")
        assert code == 0, err
        await tail.wait_rows(2 * total)
        await only_b.wait_rows(total)
        await asyncio.sleep(0.5)  # nothing more comes
    finally:
        results = [await t.interrupt() for t in (tail, only_b)]
    for code, err in results:
        assert (code, err) == (0, "")  # Ctrl-C: clean, no traceback
    for name in ("a", "b"):
        rows = [r for r in tail.rows if r["stream"] == name]
        assert [r["seq"] for r in rows] == list(range(1, total + 1))
        assert [r["payload"]["id"] for r in rows] == list(range(1, total + 1))
        feed = f"{name}-{cfg.stem}"
        assert all(orjson.dumps(r["payload"]) == orjson.dumps(
            orjson.loads(event_bytes(feed, r["seq"]))) for r in rows)  # fmt: skip
    assert only_b.rows == [r for r in tail.rows if r["stream"] == "b"]
    # The shape of `longline events`, plus the stream's name.
    code, out, _ = await longline("events", str(cfg), "--stream", "a", "--limit", "3")
    assert code == 0
    events = [orjson.loads(x) for x in out.splitlines()]
    assert [{k: v for k, v in r.items() if k != "stream"} for r in tail.rows
            if r["stream"] == "a"][:3] == events  # fmt: skip


async def test_tail_follows_run_on_sqlite(provider: Provider, tmp_path: Path) -> None:
    await follow_while_running(provider, tmp_path / "sq.yaml", f"sqlite:///{tmp_path}/t.db")


async def test_tail_follows_run_on_postgres(
    provider: Provider, tmp_path: Path, pg_url: str
) -> None:
    await follow_while_running(provider, tmp_path / "pg.yaml", pg_url)


async def test_tail_without_follow_prints_the_last_events_and_exits(
    provider: Provider, tmp_path: Path
) -> None:
    cfg = tmp_path / "last.yaml"
    write_config(cfg, f"sqlite:///{tmp_path}/l.db", provider)
    code, _, err = await longline("run", str(cfg), "--duration", "2.5")
    assert code == 0, err
    code, out, err = await longline("tail", str(cfg), "-n", "3")
    assert (code, err) == (0, "")
    rows = [orjson.loads(x) for x in out.splitlines()]
    want = [(s, q) for s in ("a", "b") for q in range(TOTAL - 2, TOTAL + 1)]
    assert [(r["stream"], r["seq"]) for r in rows] == want
    code, out, _ = await longline("tail", str(cfg), "--stream", "b", "--after", str(TOTAL - 1))
    assert code == 0
    assert [orjson.loads(x)["seq"] for x in out.splitlines()] == [TOTAL]
    code, out, err = await longline("tail", str(cfg), "--stream", "nope")
    assert code == 2 and out == ""
    assert err.strip() == f"--stream: no stream named 'nope' in {cfg}"
    missing = tmp_path / "missing.yaml"
    write_config(missing, f"sqlite:///{tmp_path}/none.db", provider)
    code, out, err = await longline("tail", str(missing), "--follow")
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"{missing}: store: no SQLite store at {tmp_path}/none.db (`longline run` creates it)"
    )
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("total", [0, 1, 2, 3, 7, 8, 9, 1000])
async def test_last_seq_finds_the_end(tmp_path: Path, total: int) -> None:
    from longline.ops.tail import last_seq
    from tests.processors.helpers import filled_store

    store = await filled_store(tmp_path / "x.db", total)
    try:
        assert await last_seq(store, "s") == total
    finally:
        await store.close()


async def test_tail_follows_run_on_dynamodb(
    provider: Provider, tmp_path: Path, dynamodb_url: str
) -> None:
    # moto answers one request at a time: a smaller feed.
    await follow_while_running(provider, tmp_path / "ddb.yaml", dynamodb_url, total=40)
