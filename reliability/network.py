"""Network faults between one `longline run` and the provider, injected by ``FaultProxy``.

Five streams (SSE, ws, lines resumable; ws and lines live-only with redundancy 2) each behind a
proxy, plus one stream whose host is ``feed.invalid`` (RFC 6761: never resolves). Faults are
drawn at random, one every ~0.3 s, on a random stream's live connection: cut mid-event/frame,
TCP reset, half-open silence, byte-at-a-time trickle, ws close 1001/1011, connections refused,
HTTP 429/503 with ``Retry-After``. Afterwards: the audit, and the process's open file
descriptors compared with before the faults (a leak grows them with every reconnect).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

from longline.testing.faultproxy import FaultProxy, ProxyConnection
from longline.testing.provider import Provider
from reliability.audit import Audit, Session, audit_live, audit_resumable, last_id
from reliability.harness import StoreSpec, cli, spawn, stream, wait_stored, write_config
from reliability.kills import LIVE_RATE, RATE, Feeds, close_feeds, fill, make_feeds, wait_connected
from reliability.report import Row

FAULTS = ("cut", "reset", "blackhole", "trickle", "ws-1001", "ws-1011", "refused", "429", "503")
FD_SLACK = 8  # connections in flight when sampled


def pick(rng: random.Random, name: str) -> str:
    kinds = [k for k in FAULTS if not k.startswith("ws-") or "-ws" in name]
    return rng.choice(kinds)


async def healthy_conn(proxy: FaultProxy, timeout: float = 10.0) -> ProxyConnection | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        ok = proxy.usable()
        if ok:
            return ok[0] if len(ok) == 1 else random.choice(ok)
        await asyncio.sleep(0.05)
    return None


async def inject(proxy: FaultProxy, conn: ProxyConnection, kind: str,
                 background: set[asyncio.Task[None]]) -> None:
    if kind == "cut":
        await proxy.cut(conn, timeout=2.0)
    elif kind == "reset":
        proxy.reset(conn)
    elif kind == "blackhole":
        proxy.blackhole(conn)
    elif kind == "trickle":
        proxy.trickle(conn, 1.5)
    elif kind.startswith("ws-"):
        task = asyncio.create_task(proxy.ws_close(conn, int(kind[3:]), timeout=2.0))
        background.add(task)
        task.add_done_callback(background.discard)
    elif kind == "refused":
        task = asyncio.create_task(proxy.refuse_for(0.5))
        background.add(task)
        task.add_done_callback(background.discard)
        await asyncio.sleep(0.01)
        proxy.reset(conn)
    else:  # 429 / 503 with Retry-After for the reconnect that the reset forces
        proxy.respond_next(int(kind), retry_after="1")
        proxy.reset(conn)


async def save_http(log: Path, out: Path) -> None:
    """What the HTTP listener serves (metrics, status, readiness, the page), kept for the
    secrets scan."""
    found = re.search(r"HTTP listener on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
    if not found:
        out.write_text("no HTTP listener found in the log\n")
        return
    base = f"http://127.0.0.1:{found.group(1)}"
    async with aiohttp.ClientSession() as session:
        with out.open("w") as f:
            for path in ("/metrics", "/api/status", "/readyz", "/"):
                async with session.get(base + path) as resp:
                    f.write(f"GET {path} {resp.status}\n{await resp.text()}\n")


async def run_network(provider: Provider, workdir: Path, faults: int, seed: int) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    name = "network"
    rng = random.Random(f"{seed}-{name}")
    store = StoreSpec.make("sqlite", workdir, name)
    total = int(RATE * (faults * 0.45 + 10))
    f: Feeds = await make_feeds(provider, f"{name}-{seed}", total, live_redundancy=2, rotate=False)
    dns = stream("dns-invalid", "sse", "http://feed.invalid:8080/sse/x?token=${REL_CANARY_QUERY}",
                 resumable=True)
    cfg = write_config(workdir / f"{name}.yaml", store, [*f.config, dns])
    log = workdir / f"{name}.log"
    row = Row("network faults via proxy, sqlite", "")
    session = Session(loop.time(), 0.0)
    proc = await spawn(cfg, log, "run", str(cfg), "--http", "127.0.0.1:0")
    done: Counter[str] = Counter()
    background: set[asyncio.Task[None]] = set()
    try:
        if not await wait_connected(f, session.start, timeout=30):
            row.failures.append("streams did not all connect within 30 s")
        await asyncio.sleep(2.0)
        proc.sample()
        fd_before = proc.fds[-1][1] if proc.fds else 0
        names = list(f.proxies)
        for _ in range(faults):
            target = rng.choice(names)
            kind = pick(rng, target)
            conn = await healthy_conn(f.proxies[target])
            if conn is None:
                done["skipped (no healthy connection in 10 s)"] += 1
                continue
            await inject(f.proxies[target], conn, kind, background)
            done[kind] += 1
            await asyncio.sleep(rng.uniform(0.1, 0.5))
        await asyncio.gather(*background, return_exceptions=True)
        want = {n: t for n, (_, t) in f.resumable.items()}
        left = max(0.0, total / RATE - (loop.time() - t0))
        got = await wait_stored(store.url, want, timeout=60 + left)
        short = {s: f"{got.get(s, 0)}/{n}" for s, n in want.items() if got.get(s, 0) < n}
        if short:
            row.failures.append(f"resumable streams incomplete after the faults: {short}")
        await asyncio.sleep(3.0)  # every stream reconnected and settled
        proc.sample()
        fd_after = proc.fds[-1][1] if proc.fds else 0
        await save_http(log, workdir / f"{name}-http.log")
        code, out = await cli("status", str(cfg), "--json")
        dns_attempts = 0
        if code == 0:
            st = orjson.loads(out[out.index("{"):])["streams"].get("dns-invalid", {})
            dns_attempts = int(st.get("reconnects", 0))
        rc = await proc.term()
        session.end = loop.time()
        for live in f.live:
            session.last_id[live] = await last_id(store.url, live)
        if rc != 0:
            row.failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
        if fd_after > fd_before + FD_SLACK:
            row.failures.append(f"open fds grew from {fd_before} to {fd_after}: a leak")
        audit = Audit("all")
        for s, (feed, n) in f.resumable.items():
            audit = audit + await audit_resumable(store.url, s, feed, n)
        for s, feed in f.live.items():
            clock = provider.feed(feed).clocks[float(LIVE_RATE)]
            audit = audit + await audit_live(
                store.url, s, feed, clock, f.proxies[s].history, [session], loop.time()
            )
    finally:
        await close_feeds(f)
    injected = sum(n for k, n in done.items() if not k.startswith("skipped"))
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done.items()))
    row.injected = f"{injected} faults ({kinds}); {dns_attempts} failed DNS resolutions"
    row.notes.append(f"open fds before the faults {fd_before}, after {fd_after}")
    row.notes.append(
        f"{sum(len(p.history) for p in f.proxies.values())} proxied connections in all"
    )
    fill(row, audit, [proc], loop.time() - t0)
    return row
