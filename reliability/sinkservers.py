"""The sinks of the sink-outage scenario: a private Redis and NATS server each (never the shared
ones on :6379 and :4222), and a webhook receiver that records every delivery it accepts.

Redis keeps an append-only file fsynced on every write (``appendfsync always``) so what it
acknowledged survives its SIGKILL and can be read back; JetStream keeps its file store in a
temporary directory, so a restart finds the stream again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from reliability.harness import RUNNING, Proc

REDIS_CANDIDATES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
NATS_CANDIDATES = ("/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server")
SHARED_PORTS = (6379, 4222)  # the machine's shared servers: never ours to stop


def find_binary(name: str, candidates: tuple[str, ...]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released), never a shared one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


async def _spawn(argv: list[str], log: Path) -> Proc:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    p = Proc(proc, asyncio.get_running_loop().time())
    RUNNING.add(p)  # killed with the campaign's leftovers if it is interrupted
    return p


class ServerProcess:
    """A server subprocess on a fixed loopback port that can be stopped and started again."""

    name = "server"

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir / f"{self.name}-data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: Proc | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def ready(self) -> bool:
        raise NotImplementedError

    async def start(self, timeout: float = 30.0) -> None:
        assert self.port not in SHARED_PORTS
        self.proc = await _spawn(self.argv(), self.dir / "server.out")
        self.starts += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.proc.returncode} at start")
            with contextlib.suppress(Exception):
                if await self.ready():
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} on port {self.port} not ready in {timeout:g} s")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            await proc.kill()


class RedisServer(ServerProcess):
    name = "redis"

    def __init__(self, binary: str, workdir: Path, password: str) -> None:
        super().__init__(binary, workdir)
        self.password = password

    def argv(self) -> list[str]:
        return [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--dir", str(self.dir), "--requirepass", self.password, "--daemonize", "no",
        ]  # fmt: skip

    def client(self) -> Any:
        from redis.asyncio import Redis

        return Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    async def ready(self) -> bool:
        client = self.client()
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    async def read(self, key: str) -> list[tuple[int, int]]:
        """``(seq, payload id)`` of every entry of the Redis stream ``key``, in entry order."""
        client = self.client()
        out: list[tuple[int, int]] = []
        start = "-"
        try:
            while entries := await client.xrange(key, start, "+", count=5000):
                for _, fields in entries:
                    pid = _payload_id(orjson.loads(fields[b"payload"]))
                    out.append((int(fields[b"seq"]), pid))
                start = "(" + entries[-1][0].decode()
        finally:
            await client.aclose()
        return out


class NatsServer(ServerProcess):
    name = "nats"

    def __init__(self, binary: str, workdir: Path, token: str) -> None:
        super().__init__(binary, workdir)
        self.token = token

    def argv(self) -> list[str]:
        return [
            self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.dir),
            "--auth", self.token,
        ]  # fmt: skip

    async def _connect(self) -> Any:
        import nats

        return await nats.connect(
            f"nats://{self.token}@127.0.0.1:{self.port}", allow_reconnect=False,
            connect_timeout=3, max_reconnect_attempts=1, error_cb=_quiet,
        )  # fmt: skip

    async def ready(self) -> bool:
        nc = await self._connect()
        try:
            await nc.jetstream(timeout=3).account_info()
            return True
        finally:
            await nc.close()

    async def read(self, stream_name: str, subjects: str) -> dict[str, list[tuple[int, int]]]:
        """``{longline stream: [(seq, payload id)]}`` of every message the JetStream stream
        holds, in stream order."""
        nc = await self._connect()
        out: dict[str, list[tuple[int, int]]] = defaultdict(list)
        try:
            js = nc.jetstream(timeout=10)
            info = await js.stream_info(stream_name)
            n = info.state.messages
            if n:
                sub = await js.subscribe(subjects, stream=stream_name, ordered_consumer=True)
                for _ in range(n):
                    msg = await sub.next_msg(timeout=15)
                    ev = orjson.loads(msg.data)
                    out[ev["stream"]].append((int(ev["seq"]), _payload_id(ev["payload"])))
                await sub.unsubscribe()
        finally:
            await nc.close()
        return out


async def _quiet(exc: Exception) -> None:
    """nats-py prints a traceback for every refused connect while the server starts."""


def _payload_id(payload: Any) -> int:
    try:
        return int(payload["id"])
    except (KeyError, TypeError, ValueError):
        return -1


class Webhook:
    """A loopback aiohttp receiver. Modes: ``up`` (checks the signature and the bearer token,
    records each event, answers 200), ``503``, ``hang`` (answers nothing until the mode
    changes), and ``down`` (no server at all: connections are refused)."""

    def __init__(self, secret: str, token: str) -> None:
        self.secret = secret.encode()
        self.token = token
        self.port = free_port()
        self.mode = "down"
        self.got: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.answers: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def set(self, mode: str) -> None:
        if mode == "down" and self._runner is not None:
            runner, self._runner = self._runner, None
            self.mode = mode
            self._wake()
            await runner.cleanup()  # closes keep-alive connections too
            return
        if mode != "down" and self._runner is None:
            app = web.Application(client_max_size=256 * 1024 * 1024)
            app.router.add_post("/hook", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
            self._runner = runner
        self.mode = mode
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "hang":
            self.answers["hung"] += 1
            while self.mode == "hang":
                await self._changed.wait()
            return web.Response(status=503, text="was hanging")  # the client gave up long ago
        if self.mode != "up":
            self.answers[self.mode] += 1
            return web.Response(status=503, text="maintenance")
        body = await request.read()
        want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, request.headers.get("X-Longline-Signature", "")):
            self.answers["bad signature"] += 1
            return web.Response(status=401, text="bad signature")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.answers["bad token"] += 1
            return web.Response(status=401, text="bad token")
        doc = orjson.loads(body)
        for ev in doc["events"]:
            self.got[doc["stream"]].append((int(ev["seq"]), _payload_id(ev["payload"])))
        self.answers["200"] += 1
        return web.Response(status=200)

    async def close(self) -> None:
        await self.set("down")
