"""Processor credentials in a run that really delivers, for the secrets scan to look for.

One `longline run --http` captures two resumable streams and delivers them to three
processors whose credentials are canaries: a webhook (a bearer token, a token header, the HMAC
``secret``) served here, a private ``redis-server`` on a free port with ``requirepass`` (the
password in the URL) and a private ``nats-server`` with JetStream and a token (``nats://TOKEN@``).
The shared Redis and NATS servers are never touched. The webhook refuses every batch holding
one of a few "poison" events with HTTP 400 and a body that echoes the token and the
Authorization header it received, so those events become dead letters whose error text has
been through longline's redaction.

Audited: the webhook received every stored event but the poisoned ones, each request with the
right token and a valid signature; Redis and JetStream hold every stored event; the dead
letters are exactly the poisoned events. Afterwards the secrets scan reads this run's log,
what its HTTP listener served, ``status``, ``check``, ``deadletters`` and the SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from longline.stores import open_store
from longline.testing.provider import Provider
from reliability.audit import Audit, audit_resumable
from reliability.harness import (
    CANARIES,
    StoreSpec,
    cli,
    spawn,
    stream,
    stream_url,
    wait_stored,
    write_config,
)
from reliability.kills import fill
from reliability.network import save_http
from reliability.report import Row

TOTAL = 1500
POISON = {333, 777, 1234}  # refused by the webhook: dead letters


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Webhook:
    """The webhook's receiving end: checks the token and the signature, records the ids."""

    def __init__(self) -> None:
        self.got: dict[str, list[int]] = {}
        self.bad_auth = 0
        self.bad_signature = 0
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        token = request.headers.get("X-Webhook-Token", "")
        if (auth != f"Bearer {CANARIES['REL_CANARY_WEBHOOK_BEARER']}"
                or token != CANARIES["REL_CANARY_WEBHOOK_TOKEN"]):
            self.bad_auth += 1
            return web.Response(status=401, text="bad credentials")
        key = CANARIES["REL_CANARY_WEBHOOK_SECRET"].encode()
        want = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Longline-Signature", ""), want):
            self.bad_signature += 1
            return web.Response(status=401, text="bad signature")
        batch = orjson.loads(body)
        ids = [int(orjson.loads(e["payload"])["id"]) if isinstance(e["payload"], str)
               else int(e["payload"]["id"]) for e in batch["events"]]
        if POISON & set(ids):
            self.refused += 1  # echo the credentials: the dead letter's error must not keep them
            return web.Response(status=400, text=f"refused; token={token} auth={auth}")
        self.got.setdefault(batch["stream"], []).extend(ids)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def start_server(argv: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """A private server process; waits until its port accepts connections."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{argv[0]} did not start on port {port}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def redis_ids(port: int, keys: list[str]) -> dict[str, list[int]]:
    from redis.asyncio import Redis

    client = Redis(host="127.0.0.1", port=port, password=CANARIES["REL_CANARY_REDIS_PASSWORD"])
    out: dict[str, list[int]] = {}
    try:
        for key in keys:
            entries = await client.xrange(f"longline:{key}")
            out[key] = [int(orjson.loads(fields[b"payload"])["id"]) for _, fields in entries]
    finally:
        await client.aclose()
    return out


async def nats_ids(port: int, stream_name: str, subjects: list[str]) -> dict[str, list[int]]:
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{port}",
                            token=CANARIES["REL_CANARY_NATS_TOKEN"])
    out: dict[str, list[int]] = {s: [] for s in subjects}
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name)
        for seq in range(1, info.state.last_seq + 1):
            msg = await js.get_msg(stream_name, seq)
            name = msg.subject.rsplit(".", 1)[1]
            payload = orjson.loads(msg.data or b"{}")["payload"]
            if isinstance(payload, str):
                payload = orjson.loads(payload)
            out.setdefault(name, []).append(int(payload["id"]))
    finally:
        await nc.close()
    return out


def compare(row: Row, what: str, got: dict[str, list[int]], want: dict[str, set[int]]) -> None:
    """``got`` must hold every wanted id of every stream; duplicates are noted (at least once)."""
    for name, ids in want.items():
        have = got.get(name, [])
        missing = ids - set(have)
        extra = set(have) - ids
        if missing or extra:
            row.failures.append(f"{what} {name}: {len(missing)} missing, {len(extra)} unexpected")
        if len(have) != len(set(have)):
            row.notes.append(f"{what} {name}: {len(have) - len(set(have))} delivered twice")


async def run_credentials(provider: Provider, workdir: Path) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    name = "credentials"
    row = Row("processor credentials in a delivering run", "")
    missing = [b for b in ("redis-server", "nats-server") if shutil.which(b) is None]
    if missing:
        row.injected = "-"
        row.skipped = f"{' and '.join(missing)} not installed"
        return row
    store = StoreSpec.make("sqlite", workdir, name)
    feeds = {f"{name}-{t}": t for t in ("sse", "lines")}
    streams = [stream(f, t, stream_url(None, provider, t, f, total=TOTAL, rate=1000, since=0),
                      resumable=True) for f, t in feeds.items()]
    hook = Webhook()
    await hook.start()
    rport, nport = free_port(), free_port()
    jsdir = workdir / "credentials-nats"
    servers = [
        await start_server(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                            "--requirepass", CANARIES["REL_CANARY_REDIS_PASSWORD"],
                            "--save", "", "--appendonly", "no"], rport,
                           workdir / "credentials-servers.out"),
    ]
    try:
        servers.append(await start_server(
            ["nats-server", "-a", "127.0.0.1", "-p", str(nport), "--auth",
             CANARIES["REL_CANARY_NATS_TOKEN"], "-js", "-sd", str(jsdir)], nport,
            workdir / "credentials-servers.out"))
        retry = {"max_attempts": 2, "initial": "50ms", "max": "200ms"}
        processors: list[dict[str, Any]] = [
            {"name": "hook", "kind": "webhook", "url": f"http://127.0.0.1:{hook.port}/hook",
             "secret": "${REL_CANARY_WEBHOOK_SECRET}", "retry": retry, "batch": 50,
             "headers": {"Authorization": "Bearer ${REL_CANARY_WEBHOOK_BEARER}",
                         "X-Webhook-Token": "${REL_CANARY_WEBHOOK_TOKEN}"}},
            {"name": "bus", "kind": "redis", "retry": retry,
             "url": f"redis://:${{REL_CANARY_REDIS_PASSWORD}}@127.0.0.1:{rport}/0"},
            {"name": "js", "kind": "nats", "retry": retry, "stream_name": "CREDS",
             "create_stream": True, "subject": "creds.{stream}",
             "servers": [f"nats://${{REL_CANARY_NATS_TOKEN}}@127.0.0.1:{nport}"]},
        ]
        cfg = write_config(workdir / f"{name}.yaml", store, streams, processors=processors)
        log = workdir / f"{name}.log"
        proc = await spawn(cfg, log, "run", str(cfg), "--http", "127.0.0.1:0")
        got = await wait_stored(store.url, dict.fromkeys(feeds, TOTAL), 60 + TOTAL / 1000)
        short = {s: f"{got.get(s, 0)}/{TOTAL}" for s in feeds if got.get(s, 0) < TOTAL}
        if short:
            row.failures.append(f"capture incomplete: {short}")
        lag = await wait_delivered(cfg, 60)
        if lag:
            row.failures.append(f"processors still behind after 60 s: {lag}")
        await save_http(log, workdir / f"{name}-http.log")
        rc = await proc.term()
        if rc != 0:
            row.failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
        want = {f: set(range(1, TOTAL + 1)) for f in feeds}
        compare(row, "webhook", hook.got, {f: ids - POISON for f, ids in want.items()})
        compare(row, "redis", await redis_ids(rport, list(feeds)), want)
        compare(row, "nats", await nats_ids(nport, "CREDS", list(feeds)), want)
        if hook.bad_auth or hook.bad_signature:
            row.failures.append(f"webhook: {hook.bad_auth} requests with wrong credentials, "
                                f"{hook.bad_signature} with a bad signature")
        dead = await dead_ids(store.url, "hook", list(feeds))
        if dead != {f: POISON for f in feeds}:
            row.failures.append(f"dead letters {dead}, expected the poisoned {sorted(POISON)}")
        audit = Audit("all")
        for f in feeds:
            audit = audit + await audit_resumable(store.url, f, f, TOTAL)
    finally:
        for server in servers:
            stop_server(server)
        await hook.stop()
        shutil.rmtree(jsdir, ignore_errors=True)
    row.injected = (
        "canaries in a webhook's bearer token, token header and HMAC secret, a private Redis's "
        "password (URL), a private NATS's token (URL); "
        f"{hook.refused} webhook batches refused with the credentials echoed"
    )
    row.notes.append(f"delivered to webhook, Redis and JetStream; dead letters: "
                     f"{len(POISON)} per stream ({sorted(POISON)})")
    fill(row, audit, [proc], loop.time() - t0)
    return row


async def wait_delivered(cfg: Path, timeout: float) -> dict[str, int]:
    """Poll ``status --json`` until every processor lane's lag is 0; returns what is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    left: dict[str, int] = {"?": -1}
    while loop.time() < deadline:
        code, out = await cli("status", str(cfg), "--json")
        if code == 0:
            data = orjson.loads(out[out.index("{"):])
            left = {}
            for proc_name, info in data.get("processors", {}).items():
                for stream_name, lane in info["streams"].items():
                    if int(lane.get("lag", 0)):
                        left[f"{proc_name}/{stream_name}"] = int(lane["lag"])
            if not left:
                return left
        await asyncio.sleep(0.5)
    return left


async def dead_ids(url: str, processor: str, streams: list[str]) -> dict[str, set[int]]:
    """The event ids of ``processor``'s dead letters, per stream."""
    out: dict[str, set[int]] = {s: set() for s in streams}
    store = open_store(url)
    await store.open()
    try:
        for d in await store.dead_letters(processor, 0, 1000):
            (ev,) = await store.read(d.stream, d.seq - 1, 1)
            out.setdefault(d.stream, set()).add(int(orjson.loads(ev.payload)["id"]))
    finally:
        await store.close()
    return out
