"""SIGKILL `longline run` at random instants, restart it, and audit every event at the end.

One process captures five streams at once (SSE, ws and lines resumable; ws and lines live-only
rotating with ``max_lifetime`` before the provider's forced close), so each kill lands on all
of them: at startup, mid-capture (often mid-commit and mid-rotation: live streams rotate every
second), or during the shutdown that a SIGTERM started.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longline.testing.faultproxy import FaultProxy
from longline.testing.provider import Provider
from reliability.audit import Audit, Session, audit_live, audit_resumable, last_id
from reliability.harness import (
    Proc,
    StoreSpec,
    spawn,
    stream,
    stream_url,
    wait_stored,
    write_config,
)
from reliability.report import Row

RATE = 1000  # events/s of each resumable feed
LIVE_RATE = 200


@dataclass
class Feeds:
    """The streams of a scenario, each behind a pass-through proxy whose history is audited."""

    resumable: dict[str, tuple[str, int]]  # stream -> (feed, total)
    live: dict[str, str]  # stream -> feed
    proxies: dict[str, FaultProxy]
    config: list[dict[str, Any]]
    live_rate: int = LIVE_RATE


async def make_feeds(provider: Provider, prefix: str, total: int, *, live_redundancy: int = 1,
                     rotate: bool = True, live: bool = True, rate: int = RATE,
                     live_rate: int = LIVE_RATE) -> Feeds:
    """Three resumable streams (sse, ws, lines) and two live-only ones (ws, sse or lines);
    ``rate`` and ``live_rate`` are events/s of each."""
    f = Feeds({}, {}, {}, [], live_rate)
    for transport in ("sse", "ws", "lines"):
        name = f"{prefix}-r-{transport}"
        proxy = f.proxies[name] = FaultProxy("127.0.0.1", provider.port)
        await proxy.start()
        url = stream_url(proxy, provider, transport, name, total=total, rate=rate, since=0)
        f.config.append(stream(name, transport, url, resumable=True))
        f.resumable[name] = (name, total)
    for transport in ("ws", "lines") if live else ():
        name = f"{prefix}-l-{transport}"
        proxy = f.proxies[name] = FaultProxy("127.0.0.1", provider.port)
        await proxy.start()
        params: dict[str, object] = {"rate": live_rate, "resumable": 0}
        extra: dict[str, Any] = {"redundancy": live_redundancy}
        if rotate:
            params["lifetime"] = 1.5
            extra["max_lifetime"] = "1s"
        url = stream_url(proxy, provider, transport, name, **params)
        f.config.append(stream(name, transport, url, resumable=False, **extra))
        f.live[name] = name
    return f


async def close_feeds(f: Feeds) -> None:
    for proxy in f.proxies.values():
        await proxy.stop()


async def wait_connected(f: Feeds, since: float, timeout: float = 15.0) -> bool:
    """Until every stream has a connection opened after ``since`` that delivered a byte."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(
            any(r.opened >= since and r.first_byte is not None for r in p.history)
            for p in f.proxies.values()
        ):
            return True
        await asyncio.sleep(0.05)
    return False


async def end_session(session: Session, f: Feeds, url: str) -> None:
    session.end = asyncio.get_running_loop().time()
    for name in f.live:
        session.last_id[name] = await last_id(url, name)


async def audit_feeds(provider: Provider, f: Feeds, url: str, sessions: list[Session],
                      end: float) -> Audit:
    total = Audit("all")
    for name, (feed, n) in f.resumable.items():
        total = total + await audit_resumable(url, name, feed, n)
    for name, feed in f.live.items():
        clock = provider.feed(feed).clocks[float(f.live_rate)]
        a = await audit_live(url, name, feed, clock, f.proxies[name].history, sessions, end)
        total = total + a
    return total


async def final_run(f: Feeds, cfg: Path, log: Path, url: str, sessions: list[Session],
                    row: Row, procs: list[Proc]) -> None:
    """Restart once more, let the resumable feeds complete, stop cleanly (exit 0 expected)."""
    loop = asyncio.get_running_loop()
    session = Session(loop.time(), 0.0)
    sessions.append(session)
    proc = await spawn(cfg, log)
    procs.append(proc)
    if not await wait_connected(f, session.start, timeout=30):  # its signal handlers are set
        row.failures.append("the final `longline run` did not connect every stream in 30 s")
    want = {name: n for name, (_, n) in f.resumable.items()}
    left = max(n for n in want.values()) / RATE
    got = await wait_stored(url, want, timeout=60 + left)
    short = {s: f"{got.get(s, 0)}/{n}" for s, n in want.items() if got.get(s, 0) < n}
    if short:
        row.failures.append(f"resumable streams incomplete after the last restart: {short}")
    await asyncio.sleep(1.0)
    rc = await proc.term()
    await end_session(session, f, url)
    if rc != 0:
        row.failures.append(f"the final `longline run` exited {rc} on SIGTERM (expected 0)")


async def run_kills(provider: Provider, workdir: Path, store_kind: str, kills: int,
                    seed: int) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    name = f"kills-{store_kind}"
    rng = random.Random(f"{seed}-{name}")
    store = StoreSpec.make(store_kind, workdir, name)
    total = RATE * (kills * 2 + 4)
    f = await make_feeds(provider, f"{name}-{seed}", total)
    cfg = write_config(workdir / f"{name}.yaml", store, f.config)
    log = workdir / f"{name}.log"
    row = Row(f"SIGKILL + restart, {store_kind}", "")
    sessions: list[Session] = []
    procs: list[Proc] = []
    instants: Counter[str] = Counter()
    try:
        for _ in range(kills):
            kind = rng.choice(["startup", "capture", "capture", "capture", "shutdown"])
            session = Session(loop.time(), 0.0)
            sessions.append(session)
            proc = await spawn(cfg, log)
            procs.append(proc)
            if kind == "startup":
                await asyncio.sleep(rng.uniform(0.0, 1.2))
            else:
                await wait_connected(f, session.start)
                await asyncio.sleep(rng.uniform(0.05, 2.0))
                if kind == "shutdown":
                    proc.proc.terminate()
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
            rc = await proc.kill()
            instants[kind if rc == -9 else f"{kind} (had exited {rc})"] += 1
            if rc not in (-9, 0):  # it ended by itself with an error: say why
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                row.notes.append(f"a {kind} run exited {rc} before its SIGKILL: {' | '.join(tail)}")
            await end_session(session, f, store.url)
        await final_run(f, cfg, log, store.url, sessions, row, procs)
        audit = await audit_feeds(provider, f, store.url, sessions, loop.time())
    finally:
        await close_feeds(f)
        await store.drop()
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(instants.items()))
    killed = sum(n for k, n in instants.items() if "exited" not in k)
    row.injected = f"{killed} SIGKILL ({kinds}); 3 resumable + 2 live streams"
    fill(row, audit, procs, loop.time() - t0)
    return row


def fill(row: Row, audit: Audit, procs: list[Proc], duration: float) -> None:
    row.produced, row.stored = audit.produced, audit.stored
    row.lost, row.doubled, row.corrupted = audit.lost, audit.doubled, audit.corrupted
    row.notes += audit.notes
    row.peak_rss_mb = max((p.peak_rss_kb for p in procs), default=0) / 1024
    row.duration_s = duration
