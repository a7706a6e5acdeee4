"""A private PostgreSQL server for the scenarios that restart or stop one.

The shared server on :5432 is never restarted (others use it). ``PrivatePostgres`` runs
``initdb`` into a temporary directory and ``pg_ctl start`` on a free loopback port with the
binaries under ``/usr/lib/postgresql/*/bin``; its Unix socket stays in that directory too.
initdb refuses to run as root, so as root (CI) every command runs as the ``postgres`` user
(``runuser``) in a directory it owns. ``stop`` (always called, also on failure) stops the server
immediately and deletes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

from reliability.report import Row

__all__ = ["PrivatePostgres", "bindir", "unavailable"]


def bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` holding initdb and pg_ctl, if any."""
    found = [
        d for d in Path("/usr/lib/postgresql").glob("*/bin")
        if (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def unavailable() -> str | None:
    """Why a private server cannot run here (None: it can)."""
    if bindir() is None:
        return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to run initdb as postgres"
    return None


def skip(row: Row, reason: str) -> Row:
    """Mark ``row`` not run; under LONGLINE_REQUIRE_SERVICES=1 that is a failure."""
    row.injected = "-"
    if os.environ.get("LONGLINE_REQUIRE_SERVICES") == "1":
        row.failures.append(f"{reason} (required: LONGLINE_REQUIRE_SERVICES=1)")
    else:
        row.skipped = reason
    return row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivatePostgres:
    """One throw-away PostgreSQL server on 127.0.0.1:``port`` (trust auth, user postgres)."""

    def __init__(self) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError(unavailable() or "no PostgreSQL binaries")
        self.bin = found
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="longline-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *argv: str, timeout: float = 120.0) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=self.dir,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{argv[0]} {argv[1]} exited {proc.returncode}: {' / '.join(text)}")

    def _options(self) -> str:
        # Frequent checkpoints bound the WAL a crash recovery replays: a restart after a crash
        # takes about a second, not as long as the whole run's WAL takes to redo.
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
                " -c max_connections=50 -c shared_buffers=32MB -c checkpoint_timeout=30s"
                " -c max_wal_size=64MB")

    async def start(self) -> None:
        """``initdb`` (first time only) and start; returns once it accepts connections."""
        if not self.data.exists():
            await self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                            "--no-sync", "-E", "UTF8")
        await self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                        "-l", str(self.log), "-o", self._options())

    async def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: clients are disconnected, the server comes straight back."""
        await self._run("pg_ctl", "restart", "-w", "-t", "60", "-m", "fast", "-D",
                        str(self.data), "-l", str(self.log), "-o", self._options())

    async def kill(self) -> None:
        """``pg_ctl stop -m immediate``: a crash (recovery from the WAL on the next start)."""
        await self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    async def stop(self) -> None:
        """Stop (if running) and delete everything; never raises."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                await self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data),
                                timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
