"""sd_notify against a real AF_UNIX datagram socket: ``longline run`` says READY=1 once the
store is open and the streams started, pings WATCHDOG=1 from its event loop, and says
STOPPING=1 on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from longline.engine import systemd
from longline.testing.provider import Provider

SLACK = 20.0


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a short directory (AF_UNIX paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="ll-") as where:
        path = os.path.join(where, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        try:
            yield sock, path
        finally:
            sock.close()


async def receive(sock: socket.socket, timeout: float = SLACK) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
    return data.decode()


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


async def test_run_notifies_ready_watchdog_and_stopping(
    provider: Provider, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    db, cfg = tmp_path / "n.db", tmp_path / "n.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": f"sqlite:///{db}",
        "streams": [{"name": "s", "transport": "lines", "key": "$.id",
                     "url": provider.url("lines", "notify", rate=50)}],
    }))  # fmt: skip
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "longline", "run", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        messages = [await receive(sock)]
        while not messages[-1].startswith("READY=1"):
            messages.append(await receive(sock))
        # Ready means the store is open (its schema exists) and the stream was started.
        assert {"events", "checkpoints"} <= tables(db)
        assert messages[-1] == "READY=1\nSTATUS=capturing 1 stream(s)"
        assert set(messages[:-1]) <= {"WATCHDOG=1"}  # the watchdog may start first
        loop = asyncio.get_running_loop()
        started = loop.time()
        pings = [await receive(sock, 2.0) for _ in range(5)]
        assert pings == ["WATCHDOG=1"] * 5
        assert loop.time() - started < 2.0  # every 0.1s: half of WATCHDOG_USEC
        proc.send_signal(signal.SIGTERM)
        while (message := await receive(sock)) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        _, err = await asyncio.wait_for(proc.communicate(), SLACK)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_abstract_socket_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"longline-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.notify("READY=1")


def test_a_missing_socket_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=systemd.__name__)  # whatever earlier tests set
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert not systemd.notify("READY=1")
    assert "could not notify systemd (READY)" in caplog.text


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert systemd.watchdog_interval() is None
