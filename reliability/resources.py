"""Resources of one `longline run` under load that could make them grow: a 100 MB message,
a gigabyte through one stream, thousands of reconnects.

- *oversize*: three resumable streams (SSE, ws, lines) each get one 100 MB message among
  normal events. It must be quarantined (the quarantine table, ``status``), every other event
  stored exactly once, and the process's peak RSS (``VmHWM``) may exceed the peak of the same
  run without the big message by at most what the framers may hold (twice
  ``max_message_size`` per stream: the data kept plus one unfinished line) and a slack.
- *volume*: one stream of 500 B events into SQLite, its RSS sampled every 0.05 s from the
  first stored event on; after the warm-up (the first 20 % of that) it must stay within a few
  MB of where it was.
- *reconnects*: three streams whose provider closes after every few events; the process's
  open fds (``/proc/PID/fd``) and asyncio tasks (``longline_asyncio_tasks`` from
  ``/metrics``) sampled every 0.25 s must stay flat after the warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from longline.stores import open_store
from longline.testing.provider import Provider
from longline.testing.provider_feeds import event_bytes
from reliability.audit import Audit, audit_resumable
from reliability.harness import Proc, StoreSpec, cli, spawn, stream, stream_url, write_config
from reliability.kills import fill
from reliability.report import Row

MB = 1 << 20
TRANSPORTS = ("sse", "ws", "lines")
# The oversize scenario's streams: (label, transport, provider parameters). ``ws-raw``: the
# provider refuses permessage-deflate, so the 100 MB frame arrives whole, not as ~100 kB of
# compressed bytes that inflate past the limit.
LEGS = (("sse", "sse", {}), ("ws", "ws", {}), ("ws-raw", "ws", {"deflate": 0}),
        ("lines", "lines", {}))
OVERSIZE_SLACK_MB = 16  # allocator and aiohttp buffers: the spread of the peak between runs
VOLUME_FLAT_MB = 8  # RSS after the warm-up may wander this much above where it was
FD_SLACK = 6  # connections closing and opening at the instant of a sample
TASK_SLACK = 12  # a connection's tasks (pump, ping, close) in flight at a sample


# -- sampling ---------------------------------------------------------------------------


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of ``pid`` in kB; 0 once it is gone."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return 0


async def metrics_port(log: Path, timeout: float = 30.0) -> int | None:
    """The port the run's HTTP listener logged (``--http 127.0.0.1:0``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = re.findall(r"HTTP listener on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found[-1])  # the log may hold earlier runs
        await asyncio.sleep(0.1)
    return None


async def gauge(session: aiohttp.ClientSession, port: int, name: str) -> float | None:
    """One unlabelled gauge from the run's ``/metrics``."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with session.get(f"http://127.0.0.1:{port}/metrics",
                               timeout=aiohttp.ClientTimeout(total=5)) as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
    return None


@dataclass
class Series:
    """Samples taken once a second: (seconds since the start, value)."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def flat(self, warmup: float, slack: float) -> tuple[float, float, bool]:
        """(value after the warm-up, max over the rest, whether max <= value + slack). The value
        after the warm-up is the max of the first three samples past ``warmup`` of the run."""
        if len(self.points) < 5:
            return 0.0, 0.0, False
        end = self.points[-1][0]
        rest = [v for t, v in self.points if t >= warmup * end]
        if len(rest) < 4:
            return 0.0, 0.0, False
        base = max(rest[:3])
        top = max(rest)
        return base, top, top <= base + slack


async def sample_every_second(proc: Proc, probes: dict[str, Any], out: dict[str, Series],
                              every: float = 1.0) -> None:
    """Call each probe (a value, or an awaitable) every ``every`` s while ``proc`` lives."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while proc.proc.returncode is None:
        for name, probe in probes.items():
            value = probe()
            if asyncio.iscoroutine(value):
                value = await value
            if value is not None and proc.proc.returncode is None:
                out.setdefault(name, Series()).points.append((loop.time() - t0, float(value)))
        await asyncio.sleep(every)


async def wait_total(url: str, stream: str, n: int, timeout: float) -> int:
    """Poll the store's totals until ``stream`` holds ``n`` events; returns what it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got = 0
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            store = open_store(url)
            await store.open()
            try:
                t = (await store.totals()).get(stream)
            finally:
                await store.close()
            got = t.events if t else 0
            if got >= n:
                break
        await asyncio.sleep(0.5)
    return got


# -- a 100 MB message -------------------------------------------------------------------


@dataclass
class OversizeRun:
    peak_kb: int
    audit: Audit
    quarantine: dict[str, list[str]]  # stream -> reasons
    status_quarantined: dict[str, int]
    proc: Proc
    failures: list[str]


async def _oversize_run(provider: Provider, workdir: Path, name: str, big: int, limit: int | None,
                        total: int, every: int) -> OversizeRun:
    store = StoreSpec.make("sqlite", workdir, name)
    streams, feeds = [], {}
    for i, (label, transport, more) in enumerate(LEGS):
        feed = f"{name}-{label}"
        params: dict[str, object] = {"total": total, "rate": 1000, "since": 0, **more}
        if big:  # 0.3 s apart: the provider shares one event loop with the campaign
            params.update(oversize_every=every + 300 * i, oversize_bytes=big)
        url = stream_url(None, provider, transport, feed, **params)
        extra: dict[str, Any] = {"stall_timeout": "10s"}  # 100 MB takes a while to write
        if limit is not None:
            extra["max_message_size"] = limit
        streams.append(stream(feed, transport, url, resumable=True, **extra))
        feeds[feed] = label
    cfg = write_config(workdir / f"{name}.yaml", store, streams)
    log = workdir / f"{name}.log"
    failures: list[str] = []
    proc = await spawn(cfg, log)
    got = {f: await wait_total(store.url, f, total, 60 + total / 1000) for f in feeds}
    short = {f: f"{n}/{total}" for f, n in got.items() if n < total}
    if short:
        failures.append(f"incomplete: {short}")
    await asyncio.sleep(0.5)
    code, out = await cli("status", str(cfg), "--json")
    status_q: dict[str, int] = {}
    if code == 0:
        st = orjson.loads(out[out.index("{"):])["streams"]
        status_q = {f: int(st.get(f, {}).get("quarantined", 0)) for f in feeds}
    else:
        failures.append(f"`longline status --json` exited {code}")
    rc = await proc.term()
    if rc != 0:
        failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
    audit = Audit("all")
    quarantine: dict[str, list[str]] = {}
    s = open_store(store.url)
    await s.open()
    try:
        for f in feeds:
            quarantine[f] = [q.reason for q in await s.read_quarantine(f, 0, 100)]
    finally:
        await s.close()
    for f in feeds:
        audit = audit + await audit_resumable(store.url, f, f, total)
    return OversizeRun(proc.peak_rss_kb, audit, quarantine, status_q, proc, failures)


async def run_oversize(provider: Provider, workdir: Path, big: int) -> Row:
    """The baseline without the big message, then the default limit, then a limit of 8 MB."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    total, every = 2500, 1300  # one oversize message per stream: after 1300, 1600, 1900, 2200
    row = Row(f"one {big // MB} MB message per stream (sse, ws, ws uncompressed, lines)", "")
    base = await _oversize_run(provider, workdir, "oversize-baseline", 0, None, total, every)
    row.failures += [f"baseline: {f}" for f in base.failures]
    audit = base.audit
    procs = [base.proc]
    row.notes.append(f"baseline (no big message, default max_message_size): peak RSS "
                     f"{base.peak_kb / 1024:.0f} MB")
    for label, limit in (("default 1 MB", None), ("8 MB", 8 * MB)):
        name = "oversize-default" if limit is None else "oversize-8mb"
        r = await _oversize_run(provider, workdir, name, big, limit, total, every)
        procs.append(r.proc)
        audit = audit + r.audit
        row.failures += [f"{label}: {f}" for f in r.failures]
        lim = limit or MB
        bound_kb = base.peak_kb + (len(LEGS) * 2 * lim + OVERSIZE_SLACK_MB * MB) // 1024
        if r.peak_kb > bound_kb:
            row.failures.append(
                f"max_message_size {label}: peak RSS {r.peak_kb / 1024:.0f} MB exceeds the bound "
                f"{bound_kb / 1024:.0f} MB (the message was buffered)"
            )
        for f, reasons in r.quarantine.items():
            too_big = [x for x in reasons if "exceeds max_message_size" in x]
            # ws: aiohttp refuses the frame and closes with 1009; the reconnect may resume
            # before the event ahead of it was committed and be sent the same message again.
            if not too_big or (not f.endswith(("-ws", "-ws-raw")) and len(too_big) != 1):
                row.failures.append(f"{label} {f}: quarantine holds {reasons!r}")
            if r.status_quarantined.get(f) != len(reasons):
                row.failures.append(f"{label} {f}: status shows {r.status_quarantined.get(f)} "
                                    f"quarantined, the quarantine holds {len(reasons)}")
        shown = "; ".join(f"{f.removeprefix(name + '-')}: {r.quarantine[f][0]}"
                          + (f" (x{len(r.quarantine[f])})" if len(r.quarantine[f]) > 1 else "")
                          for f in r.quarantine if r.quarantine[f])
        row.notes.append(
            f"max_message_size {label}: peak RSS {r.peak_kb / 1024:.0f} MB, bound "
            f"{bound_kb / 1024:.0f} MB (baseline + {len(LEGS)} streams x 2 x limit + "
            f"{OVERSIZE_SLACK_MB} MB); quarantined: {shown}"
        )
    row.injected = (f"a {big // MB} MB JSON message among 2,500 events on each stream; "
                    "max_message_size default (1 MB) and 8 MB, each against a baseline run")
    fill(row, audit, procs, loop.time() - t0)
    return row


# -- a gigabyte through one stream --------------------------------------------------------


async def audit_big(url: str, stream_name: str, feed: str, total: int, size: int) -> Audit:
    """Exactly events 1..total byte for byte, read batch by batch (never all in memory)."""
    a = Audit(stream_name, produced=total)
    seen = bytearray(total + 1)
    store = open_store(url)
    await store.open()
    after = 0
    try:
        while batch := await store.read(stream_name, after, 5000):
            for ev in batch:
                if ev.seq != after + 1:
                    a.corrupted += 1
                after = ev.seq
                a.stored += 1
                raw = ev.payload.encode()
                try:
                    i = int(orjson.loads(raw)["id"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    a.corrupted += 1
                    continue
                if not 1 <= i <= total or raw != event_bytes(feed, i, size):
                    a.corrupted += 1
                    continue
                if seen[i]:
                    a.doubled += 1
                seen[i] = 1
    finally:
        await store.close()
    a.lost = total - sum(seen)
    return a


VOLUME_EVERY = 0.05  # seconds between RSS samples of the volume row


async def run_volume(provider: Provider, workdir: Path, nbytes: int) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    size = 500  # a 1 kB event costs 4.6 kB of SQLite file (an overflow page each): docs
    total = nbytes // size
    name = "volume"
    shown = f"{nbytes / 1e9:g} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:g} MB"
    row = Row(f"{shown} through one stream, flat RSS", "")
    store = StoreSpec.make("sqlite", workdir, name)
    url = stream_url(None, provider, "lines", name, total=total, since=0, size=size)
    cfg = write_config(workdir / f"{name}.yaml", store, [stream(name, "lines", url,
                                                              resumable=True)])
    proc = await spawn(cfg, workdir / f"{name}.log")
    series: dict[str, Series] = {}
    await wait_total(store.url, name, 1, 60)  # the run is from the first stored event on
    t1 = loop.time()
    # /proc is cheap to read: sampled often enough for a run of a few seconds (CI-sized).
    sampler = asyncio.create_task(sample_every_second(proc, {"rss": lambda: rss_kb(proc.pid)},
                                                      series, VOLUME_EVERY))
    got = await wait_total(store.url, name, total, 120 + total / 2000)
    capture_s = loop.time() - t1
    rss = series.get("rss", Series())
    base, top, ok = rss.flat(0.2, VOLUME_FLAT_MB * 1024)
    rc = await proc.term()
    await asyncio.gather(sampler, return_exceptions=True)
    if got < total:
        row.failures.append(f"incomplete: {got:,}/{total:,} events")
    if rc != 0:
        row.failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
    if not ok:
        row.failures.append(
            f"RSS not flat: {base / 1024:.1f} MB after the warm-up, up to {top / 1024:.1f} MB "
            f"later (allowed +{VOLUME_FLAT_MB} MB)" if base else "too few RSS samples"
        )
    audit = await audit_big(store.url, name, name, total, size)
    db = Path(store.url.removeprefix("sqlite:///"))
    disk = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    row.notes.append(f"SQLite file {disk / MB:,.0f} MiB for {total * size / MB:,.0f} MiB of "
                     f"events ({disk / max(total, 1):,.0f} B per {size} B event)")
    if nbytes > 200_000_000:  # the secrets scan reads every .db whole: spare it a gigabyte
        for p in db.parent.glob(db.name + "*"):
            p.unlink()
    first = rss.points[0][1] / 1024 if rss.points else 0.0
    row.injected = f"{total:,} events of {size:,} B (lines, unpaced) into SQLite"
    row.notes.append(
        f"{total * size / MB:,.0f} MiB stored in {capture_s:.0f} s "
        f"({total * size / MB / max(capture_s, 1e-9):.0f} MiB/s); RSS sampled every "
        f"{VOLUME_EVERY:g} s "
        f"({len(rss.points)} samples): {first:.1f} MB at the first, {base / 1024:.1f} MB after "
        f"the warm-up (20 % of the run), at most {top / 1024:.1f} MB afterwards "
        f"(allowed +{VOLUME_FLAT_MB} MB)"
    )
    fill(row, audit, [proc], loop.time() - t0)
    return row


# -- reconnects -----------------------------------------------------------------------------


async def run_reconnects(provider: Provider, workdir: Path, reconnects: int) -> Row:
    """Three resumable streams whose provider closes cleanly after every 5 events."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    name = "reconnects"
    per = 5
    each = reconnects // len(TRANSPORTS) + 1
    total = each * per
    row = Row(f"fds and asyncio tasks across {reconnects:,} reconnects", "")
    store = StoreSpec.make("sqlite", workdir, name)
    streams = []
    for transport in TRANSPORTS:
        feed = f"{name}-{transport}"
        url = stream_url(None, provider, transport, feed, total=total, since=0,
                         disconnect_every=per)
        s = stream(feed, transport, url, resumable=True)
        s["backoff"] = {"initial": "1ms", "max": "20ms"}
        streams.append(s)
    cfg = write_config(workdir / f"{name}.yaml", store, streams)
    log = workdir / f"{name}.log"
    proc = await spawn(cfg, log, "run", str(cfg), "--http", "127.0.0.1:0")
    series: dict[str, Series] = {}
    port = await metrics_port(log)
    if port is None:
        row.failures.append("no HTTP listener in the log: cannot read the asyncio task count")
    async with aiohttp.ClientSession() as http:
        probes: dict[str, Any] = {"fds": lambda: open_fds(proc.pid)}
        if port is not None:
            probes["tasks"] = lambda: gauge(http, port, "longline_asyncio_tasks")
        sampler = asyncio.create_task(sample_every_second(proc, probes, series, 0.25))
        want = {s["name"]: total for s in streams}
        got = {n: await wait_total(store.url, n, total, 120 + reconnects / 5) for n in want}
        capture_s = loop.time() - t0
        code, out = await cli("status", str(cfg), "--json")
        rc = await proc.term()
        await asyncio.gather(sampler, return_exceptions=True)
    done = 0
    if code == 0:
        st = orjson.loads(out[out.index("{"):])["streams"]
        done = sum(int(st.get(n, {}).get("reconnects", 0)) for n in want)
    short = {n: f"{g}/{total}" for n, g in got.items() if g < total}
    if short:
        row.failures.append(f"incomplete: {short}")
    if done < reconnects:
        row.failures.append(f"only {done:,} reconnects counted (wanted {reconnects:,})")
    if rc != 0:
        row.failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
    for what, slack in (("fds", FD_SLACK), ("tasks", TASK_SLACK)):
        s = series.get(what, Series())
        base, top, ok = s.flat(0.2, slack)
        if not ok:
            row.failures.append(f"open {what} not flat: {base:.0f} after the warm-up, up to "
                                f"{top:.0f} later (allowed +{slack})" if base
                                else f"too few samples of {what}")
        values = [v for _, v in s.points]
        row.notes.append(
            f"{what}: {len(values)} samples, {values[0] if values else 0:.0f} at the first, "
            f"{base:.0f} after the warm-up (20 % of the run), at most {top:.0f} afterwards "
            f"(allowed +{slack}), {values[-1] if values else 0:.0f} at the last"
        )
    audit = Audit("all")
    for n in want:
        audit = audit + await audit_resumable(store.url, n, n, total)
    row.injected = (f"{done:,} reconnects (the provider closes after every {per} events; sse, "
                    f"ws and lines) in {capture_s:.0f} s")
    fill(row, audit, [proc], loop.time() - t0)
    return row


async def run_all(provider: Provider, workdir: Path, full: bool) -> list[Row]:
    return [
        await run_oversize(provider, workdir, 100 * MB),
        # CI: 250 MB, a few seconds on a quiet machine (50 MB were stored before a second sample)
        await run_volume(provider, workdir, 1_000_000_000 if full else 250_000_000),
        await run_reconnects(provider, workdir, 10_000 if full else 1_000),
    ]
