"""The benchmark plan: which scenarios run, in what order and how many times.

One *run* is one pass over every throughput scenario, baselines included, so each longline
figure has baselines measured minutes apart on the same machine state; ratios are paired per
run and then summarised (median, min-max).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Any

from benchmarks import capture, targets
from benchmarks.baselines import naive_loop, raw_receive, raw_sqlite
from benchmarks.nullstore import NullStore
from benchmarks.provider import ProviderProcess
from benchmarks.stats import Collected
from longline.core.model import Event
from longline.stores.sqlite.store import SQLiteStore
from longline.testing.provider_feeds import event_bytes

TRANSPORTS = ("ws", "lines", "sse")


@dataclass(frozen=True)
class Plan:
    """How much to measure. ``FULL`` is the published suite, ``SMOKE`` proves it runs."""

    runs: int
    events: int  # events per throughput run at 200 B
    sizes: tuple[int, ...]  # the size sweep (200 B uses the main figures)
    sweep_bytes: int  # payload bytes per sweep run
    naive_seconds: float
    latency_rate: int
    latency_seconds: float
    idle_streams: int
    idle_runs: int
    idle_timeout: float
    pg_streams: int = 4  # streams of the PostgreSQL figures (one stream tops out near 90 k/s)
    dynamodb_events: int = 200  # events of the DynamoDB-on-moto figure (moto slows as N^2)


FULL = Plan(
    runs=3,
    events=300_000,
    sizes=(200, 2_000, 20_000),
    sweep_bytes=120_000_000,
    naive_seconds=2.0,
    latency_rate=20_000,
    latency_seconds=5.0,
    idle_streams=10_000,
    idle_runs=3,
    idle_timeout=60.0,
    dynamodb_events=200,
)
SMOKE = Plan(
    runs=1,
    events=2_000,
    sizes=(200, 2_000),
    sweep_bytes=2_000_000,
    naive_seconds=0.2,
    latency_rate=2_000,
    latency_seconds=0.5,
    idle_streams=20,
    idle_runs=1,
    idle_timeout=20.0,
    dynamodb_events=50,
)


def log(text: str) -> None:
    """Progress goes to stderr; stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


class Suite:
    """Runs a ``Plan`` against one provider process and collects every figure."""

    def __init__(self, plan: Plan, provider: ProviderProcess, only: set[str] | None) -> None:
        self.plan = plan
        self.provider = provider
        self.only = only
        self.got = Collected()
        self._rows: dict[tuple[int, str], list[tuple[str, str, float, str]]] = {}

    def wanted(self, group: str) -> bool:
        """Whether the scenario group ``group`` was selected (``--only``); when it was, the
        figures recorded from now on are filed under it (see ``Collected.groups``)."""
        if self.only is not None and group not in self.only:
            return False
        self.got.group = group
        return True

    # -- helpers --------------------------------------------------------------------------

    def rows(self, n: int, size: int, keys: str) -> list[tuple[str, str, float, str]]:
        """The provider's events 1..n as ``raw_sqlite`` rows (built once, reused by runs)."""
        cached = self._rows.get((n, f"{size}:{keys}"))
        if cached is None:
            now = time.time()
            cached = []
            for i in range(1, n + 1):
                data = event_bytes("rows", i, size)
                key = blake2b(data, digest_size=16).hexdigest() if keys == "hash" else str(i)
                cached.append((capture.STREAM, key, now, data.decode()))
            self._rows[(n, f"{size}:{keys}")] = cached
        return cached

    def url(self, transport: str, prefix: str, n: int, size: int = 200, **extra: object) -> str:
        """A fresh unpaced (or ``rate=``) feed of ``n`` events of ``size`` bytes."""
        feed = self.provider.fresh_feed(prefix)
        return self.provider.url(transport, feed, total=n, size=size, **extra)

    async def measure(
        self,
        name: str,
        run: int,
        fn: Callable[[Path], Awaitable[float]],
        events: int | None = None,
        server: Callable[[], float] | None = None,
    ) -> None:
        """Run one rate scenario in a fresh temporary directory and record it, with the CPU
        time this process and the provider spent per event (``events`` defaults to the rate
        times the wall time); ``server`` reads a database server's CPU seconds, when local."""
        srv = server or (lambda: 0.0)
        with tempfile.TemporaryDirectory(prefix="longline-bench-") as tmp:
            busy, wall = _machine_busy(), time.perf_counter()
            cpu, provider_cpu, server_cpu = _cpu(), self.provider.cpu_seconds(), srv()
            rate = await fn(Path(tmp))
            cpu, provider_cpu = _cpu() - cpu, self.provider.cpu_seconds() - provider_cpu
            server_cpu = srv() - server_cpu
            wall, busy = time.perf_counter() - wall, _machine_busy() - busy
        n = events or max(1, round(rate * wall))
        others = max(0.0, (busy - cpu - provider_cpu - server_cpu) / wall)
        self.got.rate(name, run, rate)
        figures = {
            "us_per_event": cpu / n * 1e6,
            "provider_us_per_event": provider_cpu / n * 1e6,
            "other_processes_cores": others,
        }
        extra = ""
        if server is not None:
            figures["server_us_per_event"] = server_cpu / n * 1e6
            extra = f", server {server_cpu / n * 1e6:5.2f}"
        self.got.detail(f"cpu.{name}", run, figures)
        log(
            f"  run {run + 1}  {name:<28} {rate:>12,.0f} events/s  "
            f"cpu {cpu / n * 1e6:5.2f} us/event (provider {provider_cpu / n * 1e6:5.2f}{extra}, "
            f"other processes {others:.2f} cores)"
        )

    # -- scenario factories (each returns "run me in this temporary directory") ------------

    def cap(
        self, tr: str, prefix: str, n: int, size: int = 200, **kw: Any
    ) -> Callable[[Path], Awaitable[float]]:
        """longline capture of a fresh feed (``kw``: store, key, redundancy, extra)."""

        wire = "ws" if tr == "ws_plain" else tr  # the same provider feed, deflate not offered

        async def go(d: Path) -> float:
            url = self.url(wire, prefix, n, size)
            return await capture.capture(url, tr, n, d / "c.db", **kw)

        return go

    def recv(
        self, tr: str, n: int, size: int = 200, compress: int = 0
    ) -> Callable[[Path], Awaitable[float]]:
        """The raw_receive baseline on a fresh feed."""

        async def go(d: Path) -> float:
            url = self.url(tr, "raw", n, size)
            return await raw_receive.receive(url, tr, n, compress=compress)

        return go

    def naive(self, tr: str, n: int, wal: bool = False) -> Callable[[Path], Awaitable[float]]:
        """The naive_loop baseline for ``plan.naive_seconds``."""

        async def go(d: Path) -> float:
            url = self.url(tr, "naive", n)
            return await naive_loop.capture(url, tr, d / "n.db", self.plan.naive_seconds, wal=wal)

        return go

    @staticmethod
    def sql(rows: list[tuple[str, str, float, str]]) -> Callable[[Path], Awaitable[float]]:
        """The raw_sqlite baseline (runs on this thread: nothing else runs meanwhile)."""

        async def go(d: Path) -> float:
            return raw_sqlite.insert(d / "r.db", rows)

        return go

    # -- one run --------------------------------------------------------------------------

    async def run_once(self, run: int) -> None:
        """Every selected throughput scenario once, baselines first."""
        n, p = self.plan.events, self.plan
        if self.wanted("baselines"):
            await self.baselines(run, n, 200)
        if self.wanted("throughput"):
            await self.throughput(run, n)
        if self.wanted("redundancy"):
            for tr in ("ws", "lines"):
                fn = self.cap(tr, "red", n, redundancy=2)
                await self.measure(f"redundancy2.{tr}", run, fn, events=n)
        if self.wanted("sweep"):
            for size in p.sizes:
                if size != 200:
                    await self.sweep(run, size)
        if self.wanted("latency"):
            await self.latency(run)
        if self.wanted("processor"):
            await self.slow_processor(run, n)
        if self.wanted("stores"):
            from benchmarks import stores  # imports this module: loaded on first use

            await stores.run(self, run)

    async def baselines(self, run: int, n: int, size: int, suffix: str = "") -> None:
        """raw_sqlite (both key kinds at 200 B), raw_receive per transport, naive loops."""
        rows = self.rows(n, size, "id")
        await self.measure(f"raw_sqlite{suffix}", run, self.sql(rows), events=n)
        if not suffix:
            hashed = self.rows(n, size, "hash")
            await self.measure("raw_sqlite.hash", run, self.sql(hashed), events=n)

            batches = _batches(rows)

            async def store_only(d: Path) -> float:
                return await _store_only(d, batches)

            await self.measure("longline_store", run, store_only, events=n)
        for tr in ("ws", "lines") if suffix else TRANSPORTS:
            await self.measure(f"raw_receive.{tr}{suffix}", run, self.recv(tr, n, size), events=n)
            if tr == "ws":
                fn = self.recv(tr, n, size, compress=15)
                await self.measure(f"raw_receive.ws_deflate{suffix}", run, fn, events=n)
        if suffix:
            return
        for tr in ("ws", "lines"):
            await self.measure(f"naive_loop.{tr}", run, self.naive(tr, n))
        await self.measure("naive_loop_wal.lines", run, self.naive("lines", n, wal=True))

    async def throughput(self, run: int, n: int) -> None:
        """longline into SQLite and into the null store, per transport (and ws without
        permessage-deflate: ``ws_plain``)."""
        for tr in (*TRANSPORTS, "ws_plain"):
            await self.measure(f"durable.{tr}", run, self.cap(tr, "dur", n), events=n)
            fn = self.cap(tr, "null", n, store=NullStore())
            await self.measure(f"null.{tr}", run, fn, events=n)
        fn = self.cap("lines", "hash", n, key="hash")
        await self.measure("durable.lines_hash", run, fn, events=n)

    async def sweep(self, run: int, size: int) -> None:
        """Baselines and durable capture with ``size``-byte events."""
        n = max(100, min(self.plan.events, self.plan.sweep_bytes // size))
        suffix = f"@{size}"
        await self.baselines(run, n, size, suffix)
        for tr in ("ws", "lines"):
            fn = self.cap(tr, "sw", n, size)
            await self.measure(f"durable.{tr}{suffix}", run, fn, events=n)

    async def latency(self, run: int) -> None:
        """Receive-to-commit latency of a paced feed, per transport."""
        rate, secs = self.plan.latency_rate, self.plan.latency_seconds
        n = int(rate * secs)
        for tr in ("ws", "lines"):
            with tempfile.TemporaryDirectory(prefix="longline-bench-") as tmp:
                url = self.url(tr, "lat", n, rate=rate)
                figures = await capture.latency(url, tr, n, Path(tmp) / "l.db")
            self.got.detail(f"latency.{tr}", run, figures)
            log(
                f"  run {run + 1}  latency.{tr:<20} p50 {figures['p50_ms']:.2f} ms  "
                f"p99 {figures['p99_ms']:.2f} ms  max {figures['max_ms']:.2f} ms "
                f"at {figures['rate']:,.0f}/s"
            )

    async def slow_processor(self, run: int, n: int) -> None:
        """Durable capture while a Python processor sleeps 1 s per batch (issue 4)."""
        extra = capture.slow_processor_config()
        if extra is not None:
            fn = self.cap("lines", "proc", n, extra=extra)
            await self.measure("slow_processor.lines", run, fn, events=n)

    # -- idle streams (own processes) ------------------------------------------------------

    def idle(self) -> None:
        """The many-idle-streams test, longline then bare aiohttp (the floor), each run in a
        fresh process against a fresh provider."""
        for run in range(self.plan.idle_runs):
            for name, extra in (("idle.ws", []), ("idle.raw_ws", ["--raw"])):
                figures = self._idle_once(extra)
                self.got.detail(name, run, figures)
                log(
                    f"  run {run + 1}  {name} {figures['streams']} streams: connected "
                    f"{figures['connected']} in {figures['connect_s'] or 0:.1f} s, "
                    f"{figures['kb_per_stream']:.1f} KB/stream"
                )

    def _idle_once(self, extra: list[str]) -> dict[str, Any]:
        with ProviderProcess() as provider:
            cmd = [sys.executable, "-m", "benchmarks.idle", "--port", str(provider.port)]
            cmd += ["--streams", str(self.plan.idle_streams)]
            cmd += ["--timeout", str(self.plan.idle_timeout), *extra]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"idle benchmark failed:\n{out.stderr[-2000:]}")
        figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return figures


def _machine_busy() -> float:
    """CPU seconds all processes on the machine have used (Linux ``/proc/stat``), so that the
    share taken by work other than the benchmark can be reported next to each figure."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    """CPU time of this process, every thread (the SQLite writer's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _batches(
    rows: list[tuple[str, str, float, str]], size: int = raw_sqlite.BATCH
) -> list[Sequence[Event]]:
    """The rows as the writer hands them to the store: 1000-event column batches."""
    from longline.core.keys import EventBatch  # imported here: absent before the fast path

    events = [Event(key, payload, key, received) for _, key, received, payload in rows]
    return [EventBatch.of(events[i : i + size]) for i in range(0, len(events), size)]


async def _store_only(tmp: Path, batches: list[Sequence[Event]]) -> float:
    """longline's SQLiteStore.append alone, fed prebuilt batches."""
    store = SQLiteStore(tmp / "s.db")
    await store.open()
    try:
        start = time.perf_counter()
        for batch in batches:
            await store.append(capture.STREAM, batch)
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    return sum(len(b) for b in batches) / elapsed


async def run_plan(suite: Suite) -> None:
    """All runs of the throughput scenarios (the idle test runs separately)."""
    for run in range(suite.plan.runs):
        load = os.getloadavg()[0]
        log(f"run {run + 1} of {suite.plan.runs} (load average {load:.2f})")
        suite.got.group = ""
        suite.got.detail("load", run, {"loadavg_1m_at_start": load})
        await suite.run_once(run)


def execute(plan: Plan, only: set[str] | None) -> dict[str, Any]:
    """Run ``plan`` and return the results document (without machine/command)."""
    with ProviderProcess() as provider:
        suite = Suite(plan, provider, only)
        asyncio.run(run_plan(suite))
    if suite.wanted("idle"):
        log("idle streams")
        suite.idle()
    return targets.results(suite.got, plan)
