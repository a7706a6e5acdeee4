"""Store outages under a running `longline run`, on a private PostgreSQL server and on DynamoDB
(moto behind the fault-injecting proxy ``longline.testing.dynamodb_faults``).

Each row has three phases on the same five streams (3 resumable, 2 live-only):

1. transient faults while `longline run` captures: the PostgreSQL server restarted
   (``pg_ctl restart -m fast``) or crashed (``stop -m immediate``) and started again after
   seconds of downtime; DynamoDB throttling calls and cancelling transactions for conflicts.
   The run must go on (no stream stopped, nothing lost);
2. a permanent fault: the server down past ``store_patience``, or DynamoDB refusing every call
   (``AccessDeniedException``). The run must end by itself with exit 1, one last line saying
   why, and no traceback;
3. the store healed, `longline run` again: the resumable feeds must complete exactly 1..N, which
   they cannot if phase 2 checkpointed anything it had not stored; SIGTERM, exit 0.

Everything is then audited like the other rows.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from longline.testing.dynamodb_faults import DynamoDBFaultProxy
from longline.testing.provider import Provider
from reliability import motoserver, pgserver
from reliability.audit import Session, last_id
from reliability.harness import Proc, StoreSpec, spawn, write_config
from reliability.kills import (
    RATE,
    audit_feeds,
    close_feeds,
    fill,
    final_run,
    make_feeds,
    wait_connected,
)
from reliability.pgserver import PrivatePostgres, skip
from reliability.report import Row

PATIENCE = 15.0  # store_patience of the runs: longer than a phase-1 outage (crash, 1-3 s down,
# crash recovery) on a loaded machine, so only phase 2 may end the run
SHUTDOWN = 2.0  # their shutdown_timeout: the writers that did not give up retry this long


def _log_problems(text: str) -> list[str]:
    out = []
    if "Traceback" in text:
        tail = text[text.index("Traceback"):].splitlines()
        last = next((ln for ln in tail[1:] if ln and not ln.startswith((" ", "Traceback"))), "")
        out.append(f"a traceback in the log: {last[:200]}")
    if "crashed" in text:
        out.append("a stream or writer crashed (see the log)")
    return out


@dataclass
class Outage:
    """What a row does to its store: ``transient`` (phase 1, returns what it injected),
    ``permanent`` and ``heal`` (phases 2 and 3)."""

    transient: Callable[[Proc], Awaitable[str]]
    permanent: Callable[[], Awaitable[None]]
    heal: Callable[[], Awaitable[None]]


async def _three_phases(
    provider: Provider, workdir: Path, row: Row, name: str, url: str, audit_url: str,
    outage: Outage, seconds: float, phase2: float, *args: str, rate: int = RATE,
    live_rate: int = 200,
) -> str:
    """Run the three phases (module docstring) with feeds sized for about ``seconds`` of
    phase 1 and ``phase2`` of phase 2; audits into ``row`` and returns what phase 1
    injected."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    total = int(rate * (seconds + phase2 + 8))  # published until phase 3 is under way
    f = await make_feeds(provider, name, total, rate=rate, live_rate=live_rate)
    procs: list[Proc] = []
    try:
        cfg = write_config(workdir / f"{name}.yaml", StoreSpec("-", url), f.config,
                           store_patience=f"{PATIENCE:g}s", shutdown_timeout=f"{SHUTDOWN:g}s")
        log = workdir / f"{name}.log"
        first = Session(loop.time(), 0.0)
        proc = await spawn(cfg, log, *args, str(cfg)) if args else await spawn(cfg, log)
        procs.append(proc)
        if not await wait_connected(f, first.start, timeout=60):
            row.failures.append("`longline run` did not connect every stream in 60 s")
        await asyncio.sleep(2.0)
        injected = await outage.transient(proc)
        await asyncio.sleep(1.0)
        if proc.proc.returncode is not None:
            row.failures.append(f"`longline run` exited {proc.proc.returncode} in phase 1")
        broken = loop.time()
        await outage.permanent()
        limit = PATIENCE + SHUTDOWN + 30  # the last backoff step, a loaded machine
        try:
            rc = await asyncio.wait_for(proc.wait(), limit)
        except TimeoutError:
            row.failures.append(f"`longline run` still ran {limit:.0f} s after the store broke")
            rc = await proc.term()
        first.end = loop.time()
        text = log.read_text(errors="replace")
        finals = [ln.split(" ERROR longline.run: ", 1)[1] for ln in text.splitlines()
                  if " ERROR longline.run: " in ln]
        row.notes.append(f"phase 2: the run ended by itself {first.end - broken:.1f} s after"
                         f" the store broke, exit {rc}, last line: `{' / '.join(finals)}`")
        if rc != 1:
            row.failures.append(f"`longline run` exited {rc} after the store broke (expected 1)")
        if len(finals) != 1 or "giving up" not in finals[0]:
            row.failures.append(f"expected one last line saying it gave up, got {finals}")
        row.failures += _log_problems(text)
        await outage.heal()
        for stream in f.live:
            first.last_id[stream] = await last_id(audit_url, stream)
        sessions = [first]
        # A stop with time to commit the last batches to a slow store (moto): exit 0 expected.
        write_config(cfg, StoreSpec("-", url), f.config, store_patience=f"{PATIENCE:g}s",
                     shutdown_timeout="15s")
        await final_run(f, cfg, log, audit_url, sessions, row, procs)
        row.failures += _log_problems(log.read_text(errors="replace")[len(text):])
        audit = await audit_feeds(provider, f, audit_url, sessions, loop.time())
    finally:
        await close_feeds(f)
    fill(row, audit, procs, loop.time() - t0)
    return injected


# -- PostgreSQL -------------------------------------------------------------------------------


async def run_postgres(provider: Provider, workdir: Path, rounds: int, seed: int) -> Row:
    """Phase 1 alternates ``pg_ctl restart -m fast`` with a crash (``stop -m immediate``), 1-3 s
    of downtime and a start, 1.5-3 s apart; phase 2 crashes the server and leaves it down."""
    row = Row("PostgreSQL restarted mid-run, then down past store_patience (private server)", "")
    if (why := pgserver.unavailable()) is not None:
        return skip(row, why)
    rng = random.Random(f"{seed}-pg-outages")
    pg = PrivatePostgres()

    async def restarts(proc: Proc) -> str:
        fast = crashes = 0
        downtime = longest = 0.0
        for i in range(rounds):
            if proc.proc.returncode is not None:
                break
            began = asyncio.get_running_loop().time()
            if i % 2 == 0:
                await pg.restart_fast()
                fast += 1
            else:
                await pg.kill()
                down = rng.uniform(1.0, 3.0)
                await asyncio.sleep(down)
                await pg.start()
                downtime += down
                crashes += 1
            longest = max(longest, asyncio.get_running_loop().time() - began)
            await asyncio.sleep(rng.uniform(1.5, 3.0))
        return (f"{fast} fast restart(s), {crashes} crash(es) with {downtime:.0f} s of downtime"
                f" in all (the longest outage {longest:.1f} s, until accepting connections)")

    try:
        await pg.start()
        url = f"{pg.url}?schema=rel_pg_outages"
        injected = await _three_phases(provider, workdir, row, f"pgo-{seed}", url, url,
                                       Outage(restarts, pg.kill, pg.start), rounds * 3.5,
                                       PATIENCE + SHUTDOWN)
    finally:
        await pg.stop()
    row.injected = (f"{injected}; then a crash left down until the run gave up"
                    f" (store_patience {PATIENCE:g}s); 3 resumable + 2 live streams")
    return row


# -- DynamoDB ---------------------------------------------------------------------------------

# moto copies whole tables per transaction (O(table) each): the feeds are sized so that the
# tables stay at about 2,000 events, which moto still writes fast enough.
DDB_EVENTS = 2000


async def run_dynamodb(provider: Provider, workdir: Path, seconds: float, seed: int) -> Row:
    """Phase 1: 10 % of all calls throttled and 20 % of the transactions cancelled for a
    conflict, for ``seconds``; phase 2: every call refused with AccessDeniedException."""
    row = Row("DynamoDB throttling + transaction conflicts, then access denied (moto)", "")
    if (why := motoserver.unavailable()) is not None:
        return skip(row, why)
    async with motoserver.moto_server() as endpoint, DynamoDBFaultProxy(
        endpoint, seed=f"{seed}-ddb"
    ) as proxy:
        prefix = f"rel{uuid.uuid4().hex[:10]}"
        rate = max(2, int(DDB_EVENTS / 3.5 / (seconds + 2 + SHUTDOWN + 8)))
        url = f"dynamodb://{prefix}?region=us-east-1&endpoint_url={proxy.url}"
        audit_url = f"dynamodb://{prefix}?region=us-east-1&endpoint_url={endpoint}"

        async def throttle(proc: Proc) -> str:
            proxy.throttle, proxy.conflict = 0.1, 0.2
            await asyncio.sleep(seconds)
            proxy.throttle = proxy.conflict = 0.0
            inj = dict(proxy.injected)
            pte = inj.get("ProvisionedThroughputExceededException", 0)
            thr = inj.get("ThrottlingException", 0)
            return (f"{pte + thr} throttles ({pte} ProvisionedThroughputExceeded, {thr}"
                    f" Throttling) and {inj.get('TransactionConflict', 0)} TransactionConflict"
                    f" cancellations in {seconds:g} s ({sum(proxy.forwarded.values())} calls"
                    " passed)")

        async def deny() -> None:
            proxy.deny = "AccessDeniedException"

        async def allow() -> None:
            proxy.deny = None

        injected = await _three_phases(
            provider, workdir, row, f"ddb-{seed}", url, audit_url,
            Outage(throttle, deny, allow), seconds, 2 + SHUTDOWN, "run", "--create-tables",
            rate=rate, live_rate=max(1, rate // 4),
        )
    row.injected = (f"{injected}; then every call refused (AccessDeniedException, "
                    f"{proxy.injected['AccessDeniedException']} calls) until the run gave up;"
                    " 3 resumable + 2 live streams")
    return row


async def run_all(provider: Provider, workdir: Path, full: bool, seed: int) -> list[Row]:
    return [
        await run_postgres(provider, workdir, 10 if full else 2, seed),
        await run_dynamodb(provider, workdir, 60 if full else 5, seed),
    ]
