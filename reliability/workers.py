"""Worker mode under faults: three `longline run --worker` processes share 30 streams on one
store; one is SIGKILLed every so often and restarted, one is frozen with SIGSTOP past its lease
ttl and resumed with SIGCONT. Then the store is audited.

Who committed what is read from the store itself: every event keeps the lease epoch of the
append that stored it, and each worker's log names the epochs it took ("took stream S at epoch
N"), checked against a poll of the lease table (one owner per epoch, epochs only grow). From
that:

- *fencing*: a worker frozen past its ttl must commit nothing after SIGCONT under the epochs it
  lost meanwhile (no event of a lost epoch received after SIGCONT, none stored after its
  successor's first event), and in general an owner's commits after its successor's first
  commit (make-before-break) stop within a ttl;
- *takeover*: every stream a killed or frozen worker held is taken at a newer epoch within the
  ttl plus slack (max and median reported);
- *events*: resumable feeds exactly 1..N once each, in order, byte-identical; live-only feeds
  nothing doubled, and nothing missing that was published while a connection was up, up to the
  last event its worker committed (each worker has its own proxies, so a connection's worker is
  known).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from longline.core.model import Lease
from longline.stores import Store, open_store
from longline.stores.postgres.store import IDLE_IN_TRANSACTION_MS
from longline.testing.faultproxy import ConnectionRecord, FaultProxy
from longline.testing.provider import Provider
from longline.testing.provider_feeds import FeedClock, event_bytes
from reliability.audit import CLOSE_MARGIN, OPEN_MARGIN, Audit, _ranges, audit_resumable
from reliability.harness import (
    PG_SERVER,
    SIZE,
    Proc,
    StoreSpec,
    cli,
    spawn,
    stream,
    stream_url,
    write_config,
)
from reliability.report import Row
from reliability.storefaults import pg_client_ports

SLOTS = ("A", "B", "C")
LIVE_LAG = 1.0  # a successor's lease turns live at its next renewal after its first commit
TOOK = re.compile(r"worker (\S+): took stream (\S+) at epoch (\d+)")


@dataclass
class Plan:
    """The size of one run."""

    store: str
    ttl: float
    resumable: int  # streams
    live: int
    rate: int  # events/s of each feed
    chaos: float  # seconds of kills and freezes
    kill_every: float
    freezes: int

    @property
    def freeze(self) -> float:
        """How long a worker stays frozen: past its ttl, and on PostgreSQL past the server's
        idle-in-transaction timeout too, so that a stream frozen mid-commit (its row locked)
        is taken over while the worker is still frozen."""
        if self.store == "postgres":
            return max(2.5 * self.ttl, IDLE_IN_TRANSACTION_MS / 1000 + self.ttl + 1.0)
        return 2.5 * self.ttl

    @property
    def slack(self) -> float:
        """What a takeover may take beyond the ttl: a balance round (ttl/6), the 2 s a taker
        may wait for a row lock, 1 s for a loaded machine."""
        return self.ttl / 6 + 3.0


def plans(full: bool) -> list[Plan]:
    if full:
        return [
            Plan("postgres", 3.0, 20, 10, 40, 600.0, 20.0, 5),
            Plan("dynamodb", 6.0, 3, 2, 2, 90.0, 30.0, 1),
        ]
    return [
        Plan("postgres", 3.0, 20, 10, 40, 36.0, 12.0, 1),
        Plan("dynamodb", 6.0, 3, 2, 2, 22.0, 20.0, 1),
    ]


@dataclass
class Life:
    """One worker process: its id, its slot (whose proxies it uses), and when it ran/froze."""

    wid: str
    slot: str
    proc: Proc
    start: float
    end: float = float("inf")
    stopped: float | None = None  # SIGSTOP (loop time)
    resumed: float | None = None  # SIGCONT


@dataclass
class Poll:
    """Polls every lease; keeps each stream's (loop time, owner, epoch) changes."""

    store: Store
    changes: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)
    now: dict[str, Lease] = field(default_factory=dict)
    errors: int = 0

    async def once(self) -> None:
        self.now = await self.store.leases()
        at = asyncio.get_running_loop().time()
        for name, lease in self.now.items():
            seen = self.changes.setdefault(name, [])
            if not seen or seen[-1][1:] != (lease.owner, lease.epoch):
                seen.append((at, lease.owner, lease.epoch))

    async def run(self, period: float) -> None:
        while True:
            try:
                await self.once()
            except Exception:
                self.errors += 1
            await asyncio.sleep(period)

    def held_by(self, wid: str) -> dict[str, int]:
        """Stream -> epoch of the unexpired leases ``wid`` holds, as last polled."""
        now = time.time()
        return {
            n: lease.epoch
            for n, lease in self.now.items()
            if lease.owner == wid and lease.expires_at > now
        }

    def taken_after(self, name: str, epoch: int, since: float) -> float | None:
        """Loop time a newer epoch than ``epoch`` was first seen for ``name``."""
        return next((t for t, _, e in self.changes.get(name, []) if e > epoch and t >= since),
                    None)


@dataclass
class Stored:
    """One stored event as the audit needs it."""

    seq: int
    id: int
    epoch: int | None
    received: float  # loop time of the campaign (from the worker's wall clock)
    ok: bool  # payload byte-identical


async def read_events(store: Store, name: str, offset: float) -> list[Stored]:
    out: list[Stored] = []
    after = 0
    while batch := await store.read(name, after, 5000):
        for ev in batch:
            after = ev.seq
            try:
                i = int(orjson.loads(ev.payload)["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                i = -1
            ok = ev.payload.encode() == event_bytes(name, i, SIZE)
            out.append(Stored(ev.seq, i, ev.epoch, ev.received_at - offset, ok))
    return out


# -- moto ------------------------------------------------------------------------------------

_MOTO = """
import sys
import moto.server as server
run = server.run_simple
server.run_simple = lambda *a, **k: run(*a, **{**k, "threaded": False})
server.main(sys.argv[1:])
"""  # one request at a time: moto's threaded mode is not transactional (see tests/services.py)
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.asynccontextmanager
async def moto_server() -> Any:
    """``http://127.0.0.1:PORT`` of a fresh moto server (None when moto is not installed)."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        yield None
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _MOTO, "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Run:
    plan: Plan
    provider: Provider
    workdir: Path
    name: str
    url: str
    row: Row
    rng: random.Random
    resumable: dict[str, int] = field(default_factory=dict)  # stream -> total
    live: list[str] = field(default_factory=list)
    proxies: dict[tuple[str, str], FaultProxy] = field(default_factory=dict)  # (slot, stream)
    configs: dict[str, Path] = field(default_factory=dict)
    lives: list[Life] = field(default_factory=list)
    counter: int = 0
    kills: list[tuple[float, str, dict[str, int]]] = field(default_factory=list)
    freezes: list[tuple[float, float, str, dict[str, int]]] = field(default_factory=list)
    mid_commit: list[int] = field(default_factory=list)  # per freeze: transactions left open

    async def setup(self) -> None:
        p = self.plan
        total = int(p.rate * (p.chaos + 8))
        transports = ("sse", "ws", "lines")
        entries: dict[str, list[dict[str, Any]]] = {s: [] for s in SLOTS}
        for i in range(p.resumable):
            t = transports[i % 3]
            name = f"{self.name}-r{i:02d}-{t}"
            url = stream_url(None, self.provider, t, name, total=total, rate=p.rate, since=0)
            for s in SLOTS:
                entries[s].append(stream(name, t, url, resumable=True))
            self.resumable[name] = total
        for i in range(p.live):
            t = ("ws", "lines")[i % 2]
            name = f"{self.name}-l{i:02d}-{t}"
            self.live.append(name)
            for s in SLOTS:
                proxy = self.proxies[(s, name)] = FaultProxy("127.0.0.1", self.provider.port)
                await proxy.start()
                url = stream_url(proxy, self.provider, t, name, rate=p.rate, resumable=0)
                entries[s].append(stream(name, t, url, resumable=False))
        store = StoreSpec(p.store, self.url)
        # moto answers one request at a time: fewer, larger appends there.
        window = "10ms" if p.store == "postgres" else "300ms"
        for s in SLOTS:
            self.configs[s] = write_config(self.workdir / f"{self.name}-{s}.yaml", store,
                                           entries[s], shutdown_timeout="30s",
                                           writer={"batch_max": 500, "batch_window": window})

    async def start(self, slot: str) -> Life:
        self.counter += 1
        wid = f"{slot}-{self.counter}"
        cfg = self.configs[slot]
        log = self.workdir / f"{self.name}-{wid}.log"
        proc = await spawn(cfg, log, "--log-level", "INFO", "run", str(cfg), "--worker",
                           "--worker-id", wid, "--lease-ttl", f"{self.plan.ttl}s")
        life = Life(wid, slot, proc, asyncio.get_running_loop().time())
        self.lives.append(life)
        return life

    def running(self, slot: str) -> Life:
        return next(x for x in reversed(self.lives) if x.slot == slot)

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()


async def _all_leased(poll: Poll, names: list[str], wids: set[str], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        now = time.time()
        if all((lease := poll.now.get(n)) is not None and lease.owner in wids
               and lease.expires_at > now for n in names):
            return True
        await asyncio.sleep(0.2)
    return False


async def chaos(run: Run, poll: Poll) -> None:
    """Kill one worker every ``kill_every`` s (jittered) and restart it; freeze one between
    kills, ``freezes`` times, for 2.5 ttl."""
    p, loop = run.plan, asyncio.get_running_loop()
    t0 = loop.time()
    kills_at = []
    t = p.kill_every * run.rng.uniform(0.8, 1.1)
    while t < p.chaos:
        kills_at.append(t0 + t)
        t += p.kill_every * run.rng.uniform(0.8, 1.2)
    gap = p.chaos / (p.freezes + 1)
    freezes_at = [t0 + gap * (i + 1) + run.rng.uniform(-1, 1) for i in range(p.freezes)]
    events = sorted([(t, "kill") for t in kills_at] + [(t, "freeze") for t in freezes_at])
    for at, what in events:
        await asyncio.sleep(max(0.0, at - loop.time()))
        busy = [s for s in SLOTS if poll.held_by(run.running(s).wid)]
        slot = run.rng.choice(busy or list(SLOTS))  # a worker that holds streams
        if what == "freeze":  # the one holding the most streams: its leases must move
            slot = max(SLOTS, key=lambda s: (len(poll.held_by(run.running(s).wid)), s))
        life = run.running(slot)
        if what == "kill":
            held = poll.held_by(life.wid)
            await life.proc.kill()
            life.end = loop.time()
            run.kills.append((life.end, life.wid, held))
            await asyncio.sleep(run.rng.uniform(0.5, 2.0))  # a supervisor restarting it
            await run.start(slot)
        else:
            held = poll.held_by(life.wid)
            life.proc.proc.send_signal(signal.SIGSTOP)
            life.stopped = loop.time()
            await asyncio.sleep(3.0)  # appends waiting for a taker's row lock got it by now
            run.mid_commit.append(await open_transactions(life.proc.pid)
                                  if p.store == "postgres" else 0)
            await asyncio.sleep(p.freeze - 3.0)
            life.proc.proc.send_signal(signal.SIGCONT)
            life.resumed = loop.time()
            run.freezes.append((life.stopped, life.resumed, life.wid, held))
    await asyncio.sleep(max(0.0, t0 + p.chaos - loop.time()))
    # A kill queued behind a freeze comes late, at its end: the run still lasts until the
    # takeover is due, else the audit finds the killed worker's streams never taken over.
    if run.kills:
        await asyncio.sleep(max(0.0, run.kills[-1][0] + p.ttl + p.slack - loop.time()))


async def open_transactions(pid: int) -> int:
    """How many of ``pid``'s PostgreSQL sessions are idle in a transaction (a frozen worker
    caught mid-commit: each holds a stream's row lock until the server ends it)."""
    import asyncpg

    ports = pg_client_ports(pid)
    conn = await asyncpg.connect(PG_SERVER)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[])"
            " AND state LIKE 'idle in transaction%'", ports)
    finally:
        await conn.close()
    return int(n)


def epoch_owners(run: Run) -> tuple[dict[tuple[str, int], str], list[str]]:
    """(stream, epoch) -> worker id, from every worker's log; conflicts listed."""
    owners: dict[tuple[str, int], str] = {}
    bad: list[str] = []
    for life in run.lives:
        text = (run.workdir / f"{run.name}-{life.wid}.log").read_text(errors="replace")
        for wid, name, epoch in TOOK.findall(text):
            key = (name, int(epoch))
            if owners.setdefault(key, wid) != wid:
                bad.append(f"{name} epoch {epoch} taken by {owners[key]} and {wid}")
    return owners, bad


async def run_workers(provider: Provider, workdir: Path, plan: Plan, seed: int) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    label = "PostgreSQL" if plan.store == "postgres" else "DynamoDB (moto server)"
    row = Row(f"workers + fencing, {label}", "-")
    name = f"wk{plan.store[:2]}"
    async with contextlib.AsyncExitStack() as stack:
        if plan.store == "postgres":
            spec = StoreSpec.make("postgres", workdir, name)
            stack.push_async_callback(spec.drop)
            url = spec.url
        else:
            endpoint = await stack.enter_async_context(moto_server())
            if endpoint is None:
                row.skipped = "moto[server] is not installed"
                return row
            url = (f"dynamodb://rel{uuid.uuid4().hex[:10]}?region=us-east-1"
                   f"&endpoint_url={endpoint}")
        run = Run(plan, provider, workdir, f"{name}-{seed}", url, row,
                  random.Random(f"{seed}-{name}"))
        await run.setup()
        stack.push_async_callback(run.close)
        if plan.store == "dynamodb":  # workers never create tables: `longline init` does
            rc, out = await cli("init", str(run.configs["A"]))
            if rc != 0:
                row.failures.append(f"`longline init` exited {rc}: {out.strip()[-200:]}")
                return row
        store = open_store(url)
        await store.open()
        stack.push_async_callback(store.close)
        poll = Poll(store)
        poller = asyncio.create_task(poll.run(0.15 if plan.store == "postgres" else 1.0))
        try:
            for slot in SLOTS:
                await run.start(slot)
            names = [*run.resumable, *run.live]
            if not await _all_leased(poll, names, {x.wid for x in run.lives}, 60):
                row.failures.append("the three workers did not lease every stream in 60 s")
            await chaos(run, poll)
            await finish(run, poll, store)
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            for life in run.lives:
                if life.proc.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        life.proc.proc.send_signal(signal.SIGCONT)
                    await life.proc.kill()
        audit = await audit_run(run, poll, store)
    row.injected = (
        f"{len(run.kills)} SIGKILL + restart, {len(run.freezes)} SIGSTOP of {plan.freeze:g} s"
        f" (ttl {plan.ttl:g} s); 3 workers, {plan.resumable} resumable + {plan.live} live"
        f" streams, {plan.chaos:.0f} s"
    )
    row.produced, row.stored = audit.produced, audit.stored
    row.lost, row.doubled, row.corrupted = audit.lost, audit.doubled, audit.corrupted
    row.notes += audit.notes
    row.peak_rss_mb = max((x.proc.peak_rss_kb for x in run.lives), default=0) / 1024
    row.duration_s = loop.time() - t0
    return row


async def finish(run: Run, poll: Poll, store: Store) -> None:
    """Let the resumable feeds complete, then SIGTERM every worker (exit 0 expected)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            totals = await store.totals()
            if all(n in totals and totals[n].events >= t for n, t in run.resumable.items()):
                break
        await asyncio.sleep(0.5)
    else:
        totals = await store.totals()
        short = {n: f"{totals[n].events if n in totals else 0}/{t}"
                 for n, t in run.resumable.items() if n not in totals or totals[n].events < t}
        run.row.failures.append(f"resumable streams incomplete: {short}")
    await asyncio.sleep(1.0)
    for slot in SLOTS:
        life = run.running(slot)
        rc = await life.proc.term()
        life.end = loop.time()
        if rc != 0:
            run.row.failures.append(f"worker {life.wid} exited {rc} on SIGTERM (expected 0)")


async def audit_run(run: Run, poll: Poll, store: Store) -> Audit:
    loop = asyncio.get_running_loop()
    offset = time.time() - loop.time()
    row, plan = run.row, run.plan
    total = Audit("all")
    owners, conflicts = epoch_owners(run)
    row.failures += conflicts[:3]
    life_of = {x.wid: x for x in run.lives}
    # The lease table as polled agrees with the logs, and its epochs only grow.
    for name, seen in poll.changes.items():
        epochs = [e for _, _, e in seen]
        if epochs != sorted(set(epochs)):
            row.failures.append(f"{name}: lease epochs did not only grow: {epochs}")
        for _, owner, epoch in seen:
            if owners.get((name, epoch), owner) != owner:
                row.failures.append(f"{name} epoch {epoch}: lease says {owner}, log says "
                                    f"{owners[(name, epoch)]}")
    # Events, and who committed them.
    late: list[float] = []  # seconds an old owner committed after its successor's first event
    worst: list[str] = []
    t_start = run.lives[0].start
    after_cont = {"resumable": 0, "live": 0}
    unattributed = 0
    for name in [*run.resumable, *run.live]:
        evs = await read_events(store, name, offset)
        unattributed += sum(1 for ev in evs if (name, ev.epoch or 0) not in owners)
        for lateness, ev, top in late_commits(evs):
            late.append(lateness)
            if lateness > plan.ttl and len(worst) < 8:
                worst.append(
                    f"{name}: event {ev.id} (seq {ev.seq}) committed by "
                    f"{owners.get((name, ev.epoch or 0))} at epoch {ev.epoch} {lateness:.1f} s"
                    f" after epoch {top} ({owners.get((name, top))}) had; received at"
                    f" {ev.received - t_start:.1f} s"
                )
        for stopped, resumed, _wid, held in run.freezes:
            epoch = held.get(name)
            taken = None if epoch is None else poll.taken_after(name, epoch, stopped)
            if epoch is not None and taken is not None and taken <= resumed:
                n = commits_after_resume(evs, epoch, resumed)
                after_cont["resumable" if name in run.resumable else "live"] += n
        if name in run.resumable:
            a = await audit_resumable(run.url, name, name, run.resumable[name])
            if any("out of order" in n for n in a.notes):  # a stale owner's late commit
                row.failures.append(f"{name}: stored out of order")
            total = total + a
        else:
            total = total + live_audit(run, name, evs, owners, life_of)
    if unattributed:
        row.failures.append(f"{unattributed} events under an epoch no worker logged taking")
    if after_cont["resumable"] or after_cont["live"]:
        row.failures.append(
            f"fencing: the frozen worker committed {after_cont['resumable']} resumable and "
            f"{after_cont['live']} live events after SIGCONT under epochs it had lost"
        )
    bound = plan.ttl + plan.slack
    steps = [(at, f"SIGKILL {wid} at {at - t_start:.1f} s ({len(held)} streams)")
             for at, wid, held in run.kills]
    steps += [(a, f"SIGSTOP {wid} at {a - t_start:.1f} s, SIGCONT at {b - t_start:.1f} s "
                  f"({len(held)} streams)") for a, b, wid, held in run.freezes]
    total.notes.append("timeline: " + ", ".join(text for _, text in sorted(steps)))
    if late and max(late) > bound:
        row.failures.append(f"an old owner committed {max(late):.1f} s after its successor's "
                            f"first event (make-before-break bound {bound:g} s)")
    # Takeovers after each kill and freeze.
    took: list[float] = []
    frozen_took: list[float] = []  # streams whose frozen worker was mid-commit (row locked)
    for at, wid, held in run.kills:
        for name, epoch in held.items():
            t = poll.taken_after(name, epoch, at - 5.0)
            if t is None:
                row.failures.append(f"{name}: never taken over after {wid} was killed")
            else:
                took.append(max(0.0, t - at))
                if took[-1] > bound:
                    worst.append(f"{name}: taken {took[-1]:.1f} s after {wid}'s SIGKILL; "
                                 + ", ".join(f"{c - t_start:.1f} {o}@{e}"
                                             for c, o, e in poll.changes[name]))
    locked_bound = IDLE_IN_TRANSACTION_MS / 1000 + bound
    for (stopped, resumed, wid, held), open_tx in zip(run.freezes, run.mid_commit, strict=True):
        slow = 0
        for name, epoch in held.items():
            t = poll.taken_after(name, epoch, stopped)
            if t is None or t > resumed:
                row.failures.append(f"{name}: not taken over while {wid} was frozen")
            elif t - stopped > bound:  # allowed only for a stream frozen mid-commit
                slow += 1
                frozen_took.append(t - stopped)
            else:
                took.append(t - stopped)
        if slow > open_tx:
            row.failures.append(f"{slow} streams of frozen {wid} taken over after {bound:g} s, "
                                f"but only {open_tx} were frozen mid-commit")
        if frozen_took and max(frozen_took) > locked_bound:
            row.failures.append(
                f"a stream frozen mid-commit was taken over {max(frozen_took):.1f} s after "
                f"SIGSTOP (bound {locked_bound:g} s)"
            )
    total.notes += worst
    if took and max(took) > bound:
        row.failures.append(f"a stream was taken over {max(took):.1f} s after its worker died "
                            f"or froze (bound: ttl + {plan.slack:g} s = {bound:g} s)")
    if poll.errors > 5:
        total.notes.append(f"{poll.errors} lease polls failed")
    med = statistics.median(took) if took else 0.0
    total.notes.insert(0, (
        f"takeover of {len(took)} leases of killed or frozen workers: median {med:.1f} s, "
        f"max {max(took, default=0):.1f} s (ttl {plan.ttl:g} s); "
        + (f"{len(frozen_took)} streams frozen mid-commit (row locked until the server's "
           f"{IDLE_IN_TRANSACTION_MS / 1000:g} s idle-transaction timeout) taken over after at "
           f"most {max(frozen_took, default=0):.1f} s; " if plan.store == "postgres" else "")
        + f"{sum(len(c) for c in poll.changes.values())} lease epochs seen; "
        f"{len(late)} events committed by an old owner after its successor's first event "
        f"(make-before-break), at most {max(late, default=0):.1f} s after it; "
        f"frozen worker's commits after SIGCONT under lost epochs: "
        f"{after_cont['resumable'] + after_cont['live']}"
    ))
    return total


def required_live(clock: FeedClock, conns: list[tuple[ConnectionRecord, str]],
                  evs: list[Stored], owner_of: Callable[[int | None], str | None]) -> set[int]:
    """Ids published while a worker's connection was up: from its first byte (+0.3 s) up to
    the last event that worker committed of what it received on that connection, and no
    later than just before it closed. What a frozen worker read after SIGCONT and dropped
    (fencing) is therefore not required."""
    by: dict[str, list[tuple[float, int]]] = {}  # worker -> (received, id) it committed
    for ev in evs:
        wid = owner_of(ev.epoch)
        if wid is not None:
            by.setdefault(wid, []).append((ev.received, ev.id))
    need: set[int] = set()
    for rec, wid in conns:
        if rec.first_byte is None:
            continue
        until = rec.closed if rec.closed is not None else float("inf")
        hi = max((i for t, i in by.get(wid, []) if rec.opened <= t <= until), default=0)
        healthy = rec.healthy_until()
        if healthy is not None:
            hi = min(hi, clock.published(healthy - CLOSE_MARGIN))
        lo = clock.published(rec.first_byte + OPEN_MARGIN) + 1
        need.update(range(lo, hi + 1))
    return need


def late_commits(evs: list[Stored]) -> list[tuple[float, Stored, int]]:
    """Events stored under an epoch older than one already stored before them (in seq
    order): (seconds after the newer epoch's first event, the event, the newer epoch)."""
    out: list[tuple[float, Stored, int]] = []
    first_of: dict[int, float] = {}
    top = 0
    for ev in evs:
        e = ev.epoch or 0
        if e > top:
            top = e
            first_of[e] = ev.received
        elif e < top:
            out.append((ev.received - first_of[top], ev, top))
    return out


def commits_after_resume(evs: list[Stored], lost: int, resumed: float) -> int:
    """Events a frozen worker committed under ``lost`` (an epoch taken over while it was
    frozen) that it received after SIGCONT and after its successor went live (its first
    commit, plus the renewal that marks the lease live)."""
    live_at = min((ev.received for ev in evs if ev.epoch is not None and ev.epoch > lost),
                  default=float("inf"))
    return sum(1 for ev in evs
               if ev.epoch == lost and ev.received >= max(resumed, live_at + LIVE_LAG))


def live_audit(run: Run, name: str, evs: list[Stored], owners: dict[tuple[str, int], str],
               life_of: dict[str, Life]) -> Audit:
    """Nothing doubled; nothing missing that was published while one of a worker's
    connections was up, up to the last event that worker committed."""
    clock = run.provider.feed(name).clocks[float(run.plan.rate)]
    a = Audit(name, produced=clock.published(asyncio.get_running_loop().time()))
    ids = [ev.id for ev in evs]
    have = set(ids)
    a.stored = len(evs)
    a.doubled = len(ids) - len(have)
    a.corrupted = sum(1 for ev in evs if not ev.ok)
    conns = []
    for slot in SLOTS:
        for rec in run.proxies[(slot, name)].history:
            life = next((x for x in run.lives
                         if x.slot == slot and x.start <= rec.opened <= x.end), None)
            if life is not None:
                conns.append((rec, life.wid))
    need = required_live(clock, conns, evs, lambda e: owners.get((name, e or 0)))
    missing = sorted(need - have)
    a.lost = len(missing)
    if missing:
        a.notes.append(f"{name}: missing while a connection was up: {_ranges(missing)}")
    return a


async def run_all(provider: Provider, workdir: Path, full: bool, seed: int) -> list[Row]:
    rows = []
    for plan in plans(full):
        try:
            rows.append(await run_workers(provider, workdir, plan, seed))
        except Exception as exc:  # one store's crash is its row's failure, not the other's
            rows.append(Row(f"workers + fencing, {plan.store}", "-",
                            failures=[f"scenario crashed: {type(exc).__name__}: {exc}"]))
    return rows
