"""Sink outages under a running `longline run`: Redis, NATS and a webhook go down for a while
(overlapping) as events keep arriving, then come back.

One process captures two resumable feeds (SSE, ws) and a live-only one (lines) into SQLite and
delivers them to three processors: ``redis`` (XADD into a private redis-server), ``nats``
(JetStream on a private nats-server) and ``webhook`` (a loopback receiver in this process).
Redis is SIGKILLed, NATS stopped with SIGTERM, the webhook's server shut (connections refused),
then the webhook answers 503 and finally hangs past the processor's timeout. Meanwhile
``/api/status`` is sampled every 0.5 s: the backlog (lag) must grow and capture must go on.
Afterwards each sink is read back: every stored event delivered at least once, first
deliveries in stored order per stream, payloads matching, no dead letters, and the capture
itself audited like every other scenario (exactly 1..N for the resumable feeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from longline.testing.faultproxy import FaultProxy
from longline.testing.provider import Provider
from reliability.audit import Audit, Session, audit_live, audit_resumable, last_id, read_stream
from reliability.harness import CANARIES, Proc, StoreSpec, spawn, stream, stream_url, write_config
from reliability.kills import fill
from reliability.report import Row
from reliability.sinkservers import (
    NATS_CANDIDATES,
    REDIS_CANDIDATES,
    NatsServer,
    RedisServer,
    Webhook,
    find_binary,
)

RATE = 100  # events/s of each resumable feed
LIVE_RATE = 50
JS_STREAM = "RELSINKS"
SINKS = ("redis", "nats", "webhook")
RETRY = {"initial": "200ms", "max": "3s"}  # max_attempts left at its default (8)


@dataclass(frozen=True)
class Plan:
    """When each fault starts and ends, in seconds after the warm-up."""

    down: float  # how long each sink is down (refusing connections)
    stagger: float  # Redis goes down first, NATS ``stagger`` later, the webhook 2x later
    hook_503: float  # then the webhook answers 503 for this long
    hook_hang: float  # then it hangs (past its 2 s timeout) for this long

    def windows(self) -> dict[str, tuple[float, float]]:
        """Per sink: (start, end) of its outage; the webhook's covers 503 and hang too."""
        hook_up = 2 * self.stagger + self.down + self.hook_503 + self.hook_hang
        return {
            "redis": (0.0, self.down),
            "nats": (self.stagger, self.stagger + self.down),
            "webhook": (2 * self.stagger, hook_up),
        }

    @property
    def length(self) -> float:
        return max(end for _, end in self.windows().values())


CI = Plan(down=12.0, stagger=1.5, hook_503=5.0, hook_hang=6.0)
FULL = Plan(down=150.0, stagger=15.0, hook_503=90.0, hook_hang=15.0)


@dataclass
class Sample:
    at: float
    events: dict[str, int]
    delivered: dict[str, dict[str, int]]  # processor -> stream -> delivered seq
    dead: dict[str, int]


@dataclass
class SinkFigures:
    delivered: int = 0
    redelivered: int = 0
    missing: int = 0
    corrupted: int = 0
    out_of_order: int = 0
    max_backlog: int = 0
    drain_s: float | None = None
    notes: list[str] = field(default_factory=list)


def _missing_services() -> str | None:
    problems = []
    if find_binary("redis-server", REDIS_CANDIDATES) is None:
        problems.append("redis-server not found")
    if find_binary("nats-server", NATS_CANDIDATES) is None:
        problems.append("nats-server not found")
    for module in ("redis", "nats"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"python package {module} not installed")
    return "; ".join(problems) or None


def config(store: StoreSpec, streams: list[dict[str, Any]], redis: RedisServer,
           nats_port: int, hook: Webhook) -> dict[str, Any]:
    """The processors, with credentials from the canary variables (scanned for afterwards)."""
    common = {"retry": RETRY, "timeout": "2s"}
    return {
        "processors": [
            {"name": "to-redis", "kind": "redis", "stream_key": "rel:{stream}",
             "url": f"redis://:${{REL_CANARY_PASSWORD}}@127.0.0.1:{redis.port}/0", **common},
            {"name": "to-nats", "kind": "nats", "subject": "rel.{stream}",
             "servers": [f"nats://${{REL_CANARY_SUBSCRIBE}}@127.0.0.1:{nats_port}"],
             "stream_name": JS_STREAM, "create_stream": True, **common},
            {"name": "to-webhook", "kind": "webhook", "url": hook.url,
             "secret": "${REL_CANARY_APIKEY}",
             "headers": {"Authorization": "Bearer ${REL_CANARY_HEADER}"}, **common},
        ],
    }  # fmt: skip


async def sample_status(base: str, session: aiohttp.ClientSession, at: float) -> Sample | None:
    with contextlib.suppress(Exception):
        async with session.get(base + "/api/status", timeout=aiohttp.ClientTimeout(5)) as resp:
            doc = await resp.json()
        events = {n: int(s.get("events") or 0) for n, s in doc["streams"].items()}
        procs = doc["processors"]
        delivered = {
            p[3:]: {s: int(ln["delivered_seq"]) for s, ln in info["streams"].items()}
            for p, info in procs.items()
        }
        dead = {p[3:]: int(info["dead_letters"]) for p, info in procs.items()}
        return Sample(at, events, delivered, dead)
    return None


async def http_base(log: Path, timeout: float = 30.0) -> str | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = re.search(r"HTTP listener on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return f"http://127.0.0.1:{found.group(1)}"
        await asyncio.sleep(0.1)
    return None


def backlog(s: Sample, sink: str) -> int:
    return sum(max(0, s.events.get(st, 0) - d) for st, d in s.delivered.get(sink, {}).items())


def drained_at(samples: list[Sample], sink: str, since: float) -> float | None:
    """When every stream's delivery caught up with what was stored at ``since``."""
    base = next((s for s in samples if s.at >= since), None)
    if base is None:
        return None
    for s in samples:
        if s.at >= since and all(
            s.delivered.get(sink, {}).get(st, 0) >= n for st, n in base.events.items()
        ):
            return s.at
    return None


def audit_sink(got: dict[str, list[tuple[int, int]]], stored: dict[str, list[int]]) -> SinkFigures:
    """Every stored event at least once, first deliveries in seq order, payloads matching."""
    f = SinkFigures()
    for name, ids in stored.items():
        seen: set[int] = set()
        first: list[int] = []
        for seq, pid in got.get(name, []):
            if not 1 <= seq <= len(ids) or ids[seq - 1] != pid:
                f.corrupted += 1
            if seq not in seen:
                seen.add(seq)
                first.append(seq)
        deliveries = len(got.get(name, []))
        f.delivered += len(seen)
        f.redelivered += deliveries - len(seen)
        missing = sorted(set(range(1, len(ids) + 1)) - seen)
        f.missing += len(missing)
        if missing:
            f.notes.append(f"{name}: {len(missing)} never delivered (first: {missing[:5]})")
        inversions = sum(1 for a, b in itertools.pairwise(first) if b < a)
        f.out_of_order += inversions
        if inversions:
            f.notes.append(f"{name}: first deliveries out of seq order {inversions} time(s)")
    return f


class Faults:
    """The sinks and the schedule that takes them down and brings them back."""

    def __init__(self, redis: RedisServer, nats: NatsServer, hook: Webhook, plan: Plan) -> None:
        self.redis, self.nats, self.hook, self.plan = redis, nats, hook, plan
        self.recovered: dict[str, float] = {}
        self.downed: dict[str, float] = {}
        self.errors: list[str] = []

    async def _at(self, t0: float, offset: float) -> None:
        await asyncio.sleep(max(0.0, t0 + offset - asyncio.get_running_loop().time()))

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _redis(self, t0: float) -> None:
        start, end = self.plan.windows()["redis"]
        await self._at(t0, start)
        self.downed["redis"] = self._now()
        await self.redis.stop(signal.SIGKILL)
        await self._at(t0, end)
        await self.redis.start()
        self.recovered["redis"] = self._now()

    async def _nats(self, t0: float) -> None:
        start, end = self.plan.windows()["nats"]
        await self._at(t0, start)
        self.downed["nats"] = self._now()
        await self.nats.stop(signal.SIGTERM)
        await self._at(t0, end)
        await self.nats.start()
        self.recovered["nats"] = self._now()

    async def _hook(self, t0: float) -> None:
        start, _ = self.plan.windows()["webhook"]
        p = self.plan
        await self._at(t0, start)
        self.downed["webhook"] = self._now()
        await self.hook.set("down")
        await self._at(t0, start + p.down)
        await self.hook.set("503")
        await self._at(t0, start + p.down + p.hook_503)
        await self.hook.set("hang")
        await self._at(t0, start + p.down + p.hook_503 + p.hook_hang)
        await self.hook.set("up")
        self.recovered["webhook"] = self._now()

    async def run(self, t0: float) -> None:
        results = await asyncio.gather(
            self._redis(t0), self._nats(t0), self._hook(t0), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                self.errors.append(f"fault schedule: {type(r).__name__}: {r}")


async def run_sinks(provider: Provider, workdir: Path, full: bool, seed: int) -> list[Row]:
    plan = FULL if full else CI
    title = "sink outages (Redis, NATS, webhook)"
    missing = _missing_services()
    if missing:
        row = Row(title, "-")
        if os.environ.get("LONGLINE_REQUIRE_SERVICES") == "1":
            row.failures.append(f"{missing} (required: LONGLINE_REQUIRE_SERVICES=1)")
        else:
            row.skipped = missing
        return [row]
    redis_bin = find_binary("redis-server", REDIS_CANDIDATES)
    nats_bin = find_binary("nats-server", NATS_CANDIDATES)
    assert redis_bin is not None and nats_bin is not None
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    work = workdir / "sinks-servers"
    redis = RedisServer(redis_bin, work, CANARIES["REL_CANARY_PASSWORD"])
    nats = NatsServer(nats_bin, work, CANARIES["REL_CANARY_SUBSCRIBE"])
    hook = Webhook(CANARIES["REL_CANARY_APIKEY"], CANARIES["REL_CANARY_HEADER"])
    store = StoreSpec.make("sqlite", workdir, "sinks")
    warmup, tail = 5.0, 5.0
    total = int(RATE * (warmup + plan.length + tail))
    live_total = int(LIVE_RATE * (warmup + plan.length + tail))
    prefix = f"sinks-{seed}{'-full' if full else ''}"
    proxies: dict[str, FaultProxy] = {}
    rows: list[Row] = []
    failures: list[str] = []
    procs: list[Proc] = []
    samples: list[Sample] = []
    try:
        await redis.start()
        await nats.start()
        await hook.set("up")
        streams: list[dict[str, Any]] = []
        resumable: dict[str, int] = {}
        for transport in ("sse", "ws"):
            name = f"{prefix}-r-{transport}"
            url = stream_url(None, provider, transport, name, total=total, rate=RATE, since=0)
            streams.append(stream(name, transport, url, resumable=True))
            resumable[name] = total
        live = f"{prefix}-l-lines"
        proxy = proxies[live] = FaultProxy("127.0.0.1", provider.port)
        await proxy.start()
        url = stream_url(proxy, provider, "lines", live, rate=LIVE_RATE, resumable=0,
                         total=live_total)
        streams.append(stream(live, "lines", url, resumable=False))
        cfg = write_config(workdir / "sinks.yaml", store, streams,
                           **config(store, streams, redis, nats.port, hook))
        log = workdir / "sinks.log"
        session = Session(loop.time(), 0.0)
        proc = await spawn(cfg, log, "run", str(cfg), "--http", "127.0.0.1:0")
        procs.append(proc)
        base = await http_base(log)
        if base is None:
            raise RuntimeError("`longline run` did not start its HTTP listener in 30 s")
        faults = Faults(redis, nats, hook, plan)
        async with aiohttp.ClientSession() as http:
            stop_sampling = asyncio.Event()

            async def sampler() -> None:
                while not stop_sampling.is_set():
                    s = await sample_status(base, http, loop.time())
                    if s is not None:
                        samples.append(s)
                    await asyncio.sleep(0.5)

            sampling = asyncio.create_task(sampler())
            await asyncio.sleep(warmup)
            delivering = samples[-1] if samples else None
            if delivering is None or any(
                not any(d.values()) for d in delivering.delivered.values()
            ):
                failures.append("not every sink had received events after the warm-up")
            t0 = loop.time()
            await faults.run(t0)
            failures += faults.errors
            # Everything stored must reach every sink; the feeds end at ``total``.
            deadline = loop.time() + 120 + (plan.length if full else 0)
            done = False
            while loop.time() < deadline and proc.proc.returncode is None:
                s = samples[-1] if samples else None
                clock = provider.feed(live).clocks.get(float(LIVE_RATE))
                ended = clock is not None and s is not None and s.at > clock.due_at(live_total) + 1
                if s is not None and ended and all(
                    s.events.get(n, 0) >= t for n, t in resumable.items()
                ) and all(backlog(s, k) == 0 for k in SINKS):
                    done = True
                    break
                await asyncio.sleep(0.5)
            if not done:
                last = samples[-1] if samples else None
                lag = {k: backlog(last, k) for k in SINKS} if last else {}
                failures.append(f"not drained {deadline - t0:.0f} s after the faults began: "
                                f"backlog {lag}")
            stop_sampling.set()
            await sampling
        if proc.proc.returncode is not None:
            failures.append(f"`longline run` exited {proc.proc.returncode} mid-run")
        rc = await proc.term()
        if rc != 0:
            failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
        session.end = loop.time()
        session.last_id[live] = await last_id(store.url, live)
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            failures.append("a traceback in the log")
        # Capture: exactly 1..N for the resumable feeds; the live one audited by its proxy.
        audit = Audit("all")
        for name, n in resumable.items():
            audit = audit + await audit_resumable(store.url, name, name, n)
        clock = provider.feed(live).clocks[float(LIVE_RATE)]
        end = min(loop.time(), clock.due_at(live_total))
        audit = audit + await audit_live(store.url, live, live, clock, proxy.history,
                                         [session], end)
        stored: dict[str, list[int]] = {}
        for name in [*resumable, live]:
            rows_, _ = await read_stream(store.url, name)
            stored[name] = [i for i, _ in rows_]
        got = {
            "redis": {n: await redis.read(f"rel:{n}") for n in stored},
            "nats": await nats.read(JS_STREAM, "rel.>"),
            "webhook": dict(hook.got),
        }
    finally:
        for p in proxies.values():
            await p.stop()
        await hook.close()
        await redis.stop()
        await nats.stop()
    duration = loop.time() - t_start
    w = plan.windows()
    capture = Row(f"{title}: capture", "")
    capture.failures += failures
    fill(capture, audit, procs, duration)
    dead = samples[-1].dead if samples else {}
    all_down = (t0 + max(a for a, _ in w.values()), t0 + min(b for _, b in w.values()))
    during = [s for s in samples if all_down[0] <= s.at <= all_down[1]]
    if len(during) >= 2:
        grew = {n: during[-1].events.get(n, 0) - during[0].events.get(n, 0) for n in resumable}
        span = during[-1].at - during[0].at
        slow = {n: g for n, g in grew.items() if g < 0.8 * RATE * span}
        capture.notes.append(f"while all three sinks were down ({span:.0f} s), capture stored "
                             + ", ".join(f"{g:,} of {n}" for n, g in grew.items()))
        if slow:
            capture.failures.append(f"capture slowed while the sinks were down: {slow}")
    else:
        capture.failures.append("no status samples while the sinks were down")
    capture.injected = (
        f"Redis SIGKILLed, NATS stopped, webhook refusing, each {plan.down:g} s, overlapping; "
        f"then webhook 503 {plan.hook_503:g} s, hanging {plan.hook_hang:g} s; "
        "2 resumable + 1 live stream, 3 processors"
    )
    rows.append(capture)
    how = {
        "redis": f"redis-server SIGKILLed, down {plan.down:g} s",
        "nats": f"nats-server (JetStream) stopped, down {plan.down:g} s",
        "webhook": f"refusing {plan.down:g} s, then 503 {plan.hook_503:g} s, "
                   f"then hanging {plan.hook_hang:g} s",
    }  # fmt: skip
    for sink in SINKS:
        f = audit_sink(got[sink], stored)
        start, end = w[sink]
        f.max_backlog = max((backlog(s, sink) for s in samples), default=0)
        rec = faults.recovered.get(sink)
        if rec is not None and (at := drained_at(samples, sink, rec)) is not None:
            f.drain_s = at - rec
        row = Row(f"{title}: {sink}", "")
        row.produced = sum(len(v) for v in stored.values())
        row.stored = f.delivered
        row.lost, row.corrupted = f.missing, f.corrupted
        row.duration_s = duration
        row.peak_rss_mb = capture.peak_rss_mb
        drain = f"{f.drain_s:.1f} s" if f.drain_s is not None else "never"
        row.injected = (
            f"{how[sink]}; backlog up to {f.max_backlog:,}; drained {drain} after recovery; "
            f"{f.redelivered:,} redelivered"
        )
        row.notes += f.notes
        row.notes.append(
            f"{f.delivered:,} events delivered, {f.redelivered:,} redelivered (at least once "
            f"allowed), max backlog {f.max_backlog:,} events, caught up with what was stored at "
            f"recovery {drain} after it"
        )
        if sink == "webhook":
            row.notes.append("webhook answers: " + ", ".join(
                f"{k} {v:,}" for k, v in sorted(hook.answers.items())))
        if f.out_of_order:
            row.failures.append(f"first deliveries out of order ({f.out_of_order} inversions)")
        if f.drain_s is None:
            row.failures.append("never caught up after recovery")
        expected = 0.5 * (2 * RATE + LIVE_RATE) * min(plan.down, end - start)
        if f.max_backlog < expected:
            row.failures.append(f"the backlog peaked at {f.max_backlog} (< {expected:.0f}): "
                                "the sink never looked down")
        if dead.get(sink):
            row.failures.append(f"{dead[sink]} events dead-lettered")
        rows.append(row)
    return rows
