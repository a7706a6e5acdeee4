"""A third-party plugin (``longline_example_plugin``) adds a transport, a processor and a store
by being installed: a config using all three runs end to end, and ``longline check`` validates
its settings like the built-ins'."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from longline.plugins import spell_list
from longline.processors.registry import REGISTRY as PROCESSORS
from longline.stores import open_store
from longline.stores.registry import REGISTRY as STORES
from longline.stores.registry import usage
from longline.transports.registry import REGISTRY as TRANSPORTS

pytestmark = pytest.mark.usefixtures("example_plugin")


class LineServer:
    """A loopback TCP feed of ``{"id": n}`` lines 1..``total``, resumed from the cursor in the
    ``SUB <cursor>`` line the client sends; each connection ends after ``per_connection``
    lines, and every line is written in two pieces (framing across chunk boundaries)."""

    def __init__(self, total: int, per_connection: int) -> None:
        self.total = total
        self.per_connection = per_connection
        self.subscribes: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._done = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._done.set()
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sub = (await reader.readline()).decode().rstrip("\n")
        self.subscribes.append(sub)
        after = int(sub.removeprefix("SUB ") or 0)
        try:
            for n in range(after + 1, min(after + self.per_connection, self.total) + 1):
                line = orjson.dumps({"id": n, "text": "x" * 50}) + b"\n"
                for piece in (line[:20], line[20:]):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002)
            if after + self.per_connection >= self.total:
                await self._done.wait()  # the feed is done: stay open and quiet
        finally:
            writer.close()


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def longline(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "longline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LONGLINE_LOG_LEVEL": "WARNING"},
    )


async def test_plugin_transport_processor_and_store_run_end_to_end(tmp_path: Path) -> None:
    server = LineServer(total=35, per_connection=10)
    await server.start()
    out = tmp_path / "out" / "events.jsonl"
    db = tmp_path / "capture.db"
    cfg = write_config(
        tmp_path,
        {
            "store": f"example-sqlite:///{db}",
            "streams": [
                {
                    "name": "tcp",
                    "transport": "tcp-lines",
                    "url": f"tcp://127.0.0.1:{server.port}",
                    "options": {"read_size": 7},
                    "subscribe": ["SUB {cursor}"],
                    "key": "$.id",
                    "cursor": "$.id",
                    "resume": {"subscribe": True},
                    "backoff": {"initial": "20ms", "max": "100ms"},
                    "stall_timeout": "20s",
                }
            ],
            "processors": [{"name": "file", "kind": "jsonl-file", "path": str(out), "batch": 4}],
        },
    )
    try:
        checked = await asyncio.to_thread(longline, "check", str(cfg))
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout == f"{cfg}: ok: 1 stream(s): tcp (tcp-lines)\n"
        done = await asyncio.to_thread(longline, "run", str(cfg), "--duration", "4")
    finally:
        await server.stop()
    assert done.returncode == 0, done.stderr
    # Each connection resumed from the committed cursor, so the feed was read once, in order.
    assert server.subscribes == ["SUB ", "SUB 10", "SUB 20", "SUB 30"]
    delivered = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(d["stream"], d["seq"], d["key"]) for d in delivered] == [
        ("tcp", n, str(n)) for n in range(1, 36)
    ]
    assert [d["payload"]["id"] for d in delivered] == list(range(1, 36))
    store = open_store(f"example-sqlite:///{db}")  # the plugin's store, read back
    await store.open()
    try:
        stored = await store.read("tcp", after_seq=0, limit=100)
        assert [(e.seq, e.key) for e in stored] == [(n, str(n)) for n in range(1, 36)]
        assert await store.checkpoint("tcp") == "35"
    finally:
        await store.close()


def test_check_names_the_plugin_fields(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "store": "example-sqlite:///x.db",
            "streams": [
                {
                    "name": "tcp",
                    "transport": "tcp-lines",
                    "url": "http://127.0.0.1:9",
                    "options": {"read_size": 0, "read_sise": 5},
                }
            ],
            "processors": [
                {"name": "ok", "kind": "python", "target": "m:f"},
                {"name": "file", "kind": "jsonl-file", "fsync": "maybe", "paht": "x"},
            ],
        },
    )
    done = longline("check", str(cfg))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{cfg}: invalid configuration:",
        "streams[0].options.read_size: must be >= 1",
        "streams[0].options.read_sise: unknown key (did you mean read_size?)",
        "streams[0].url: must use tcp:// for transport tcp-lines",
        "processors[1].path: required",
        "processors[1].fsync: expected true or false",
        "processors[1].paht: unknown key (did you mean path?)",
    ]


def test_unknown_kinds_list_the_installed_ones(tmp_path: Path) -> None:
    assert "tcp-lines" in TRANSPORTS.names() and "jsonl-file" in PROCESSORS.names()
    assert "example-sqlite" in STORES.names()
    cfg = write_config(
        tmp_path,
        {
            "store": "nope:///x.db",
            "streams": [{"name": "s", "transport": "tcp", "url": "tcp://127.0.0.1:9"}],
            "processors": [{"name": "p", "kind": "jsonl", "path": "x"}],
        },
    )
    done = longline("check", str(cfg))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[1:] == [
        f"store: must be {usage()}",
        f"streams[0].transport: must be {spell_list(TRANSPORTS.names())}",
        "processors[0].kind: unknown kind (did you mean jsonl-file?); must be one of "
        + ", ".join(PROCESSORS.names()),
    ]
    assert usage().endswith("memory://NAME or example-sqlite:///PATH")
    assert spell_list(TRANSPORTS.names()).endswith("'lines' or 'tcp-lines'")


def test_the_plugin_documents_its_fields_like_the_builtins() -> None:
    readme = (Path(__file__).parent / "longline_example_plugin" / "README.md").read_text()
    common = set(PROCESSORS.get("python").model.model_fields) - {"target"}
    fields = set(PROCESSORS.get("jsonl-file").model.model_fields) - common
    fields |= set(TRANSPORTS.get("tcp-lines").options.model_fields)
    assert sorted(f for f in fields if f"`{f}`" not in readme) == []


def test_a_transports_options_take_env_defaults() -> None:
    """``options`` of a plugin transport are interpolated like a processor entry:
    ``${VAR:-default}`` takes the default when the variable is unset or empty."""
    from longline.config import parse_config

    def read_size(env: dict[str, str]) -> int:
        cfg = parse_config(
            {
                "streams": [
                    {
                        "name": "tcp",
                        "transport": "tcp-lines",
                        "url": "tcp://127.0.0.1:9",
                        "options": {"read_size": "${READ_SIZE:-7}"},
                    }
                ]
            },
            env=env,
        )
        size: int = cfg.streams[0].transport_options.read_size  # type: ignore[attr-defined]
        return size

    assert read_size({}) == 7
    assert read_size({"READ_SIZE": ""}) == 7
    assert read_size({"READ_SIZE": "4096"}) == 4096
