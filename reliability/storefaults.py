"""Store faults under a running `longline run`: PostgreSQL backends terminated, SQLite locked by
another process, SQLite on a full disk (a 2 MB tmpfs).

The shared PostgreSQL server is never restarted (other users share it): only the backends
serving this run's own connections are terminated, found by their client ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from longline.testing.provider import Provider
from reliability.audit import Session
from reliability.harness import PG_SERVER, Proc, StoreSpec, spawn, wait_stored, write_config
from reliability.kills import RATE, audit_feeds, close_feeds, end_session, fill, make_feeds
from reliability.report import Row


def pg_client_ports(pid: int) -> list[int]:
    """Local ports of ``pid``'s TCP connections to port 5432 (from /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                f = line.split()
                if f[9] in inodes and int(f[2].rsplit(":", 1)[1], 16) == 5432:
                    ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return ports


async def terminate_backends(pid: int) -> int:
    import asyncpg

    ports = pg_client_ports(pid)
    if not ports:
        return 0
    conn = await asyncpg.connect(PG_SERVER)
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
            "WHERE client_port = ANY($1::int[]) AND pid <> pg_backend_pid()",
            ports,
        )
    finally:
        await conn.close()
    return sum(1 for r in rows if r["ok"])


def hold_lock(db: Path, seconds: float) -> None:
    """Another process's view: an exclusive transaction that holds the file for ``seconds``."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def _run_with(provider: Provider, workdir: Path, name: str, kind: str, rounds: int,
                    seed: int, fault: str, live: bool = True) -> Row:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    store = StoreSpec.make(kind, workdir, name)
    total = RATE * (rounds * 3 + 6)
    f = await make_feeds(provider, f"{name}-{seed}", total, live=live)
    cfg = write_config(workdir / f"{name}.yaml", store, f.config)
    log = workdir / f"{name}.log"
    row = Row(name if live else f"{name} (resumable streams only)", "")
    session = Session(loop.time(), 0.0)
    proc = await spawn(cfg, log)
    injected = 0
    try:
        await asyncio.sleep(3.0)
        for _ in range(rounds):
            if proc.proc.returncode is not None:
                row.failures.append(f"`longline run` exited {proc.proc.returncode} mid-run")
                break
            if fault == "terminate":
                injected += await terminate_backends(proc.pid)
            else:
                db = Path(store.url.removeprefix("sqlite:///"))
                await asyncio.to_thread(hold_lock, db, 3.0)
                injected += 1
            await asyncio.sleep(2.0)
        want = {n: t for n, (_, t) in f.resumable.items()}
        got = await wait_stored(store.url, want, timeout=60 + total / RATE)
        short = {s: f"{got.get(s, 0)}/{n}" for s, n in want.items() if got.get(s, 0) < n}
        if short:
            row.failures.append(f"resumable streams incomplete: {short}")
        await asyncio.sleep(1.0)
        rc = await proc.term()
        if rc != 0:
            row.failures.append(f"`longline run` exited {rc} on SIGTERM (expected 0)")
        await end_session(session, f, store.url)
        audit = await audit_feeds(provider, f, store.url, [session], loop.time())
    finally:
        await close_feeds(f)
        await store.drop()
    what = "PostgreSQL backends terminated" if fault == "terminate" else "3 s exclusive locks"
    row.injected = f"{injected} {what}; 3 resumable" + (" + 2 live streams" if live else "")
    fill(row, audit, [proc], loop.time() - t0)
    return row


async def run_full_disk(provider: Provider, workdir: Path, seed: int) -> Row:
    """SQLite on a 2 MB tmpfs that fills up mid-run: longline must keep the streams alive
    (retrying the write, no traceback), and once there is room again (remount 64 MB) complete
    the feeds exactly, then stop with exit 0."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    row = Row("SQLite on a full disk (2 MB tmpfs)", "")
    mnt = workdir / "tmpfs"
    mnt.mkdir(exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        row.injected = "-"
        row.skipped = f"cannot mount a tmpfs (root needed): {mount.stderr.strip()[:120]}"
        return row
    procs: list[Proc] = []
    f = await make_feeds(provider, f"disk-{seed}", 20_000, live=False)  # ~3x what fits
    try:
        store = StoreSpec("sqlite", f"sqlite:///{mnt / 'full.db'}")
        cfg = write_config(workdir / "full-disk.yaml", store, f.config)
        log = workdir / "full-disk.log"
        session = Session(loop.time(), 0.0)
        proc = await spawn(cfg, log)
        procs.append(proc)
        full_at = None
        for _ in range(120):
            if "disk is full" in log.read_text(errors="replace"):
                full_at = loop.time()
                break
            await asyncio.sleep(0.25)
        if full_at is None:
            row.failures.append("the disk never filled up")
        await asyncio.sleep(5.0)
        if proc.proc.returncode is not None:
            row.failures.append(f"`longline run` exited {proc.proc.returncode} on a full disk")
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        want = {n: t for n, (_, t) in f.resumable.items()}
        got = await wait_stored(store.url, want, timeout=90)
        short = {s: f"{got.get(s, 0)}/{n}" for s, n in want.items() if got.get(s, 0) < n}
        if short:
            row.failures.append(f"incomplete after freeing space: {short}")
        rc = await proc.term()
        if rc != 0:
            row.failures.append(f"exited {rc} on SIGTERM after the disk had room (expected 0)")
        if "Traceback" in log.read_text(errors="replace"):
            row.failures.append("a traceback in the log")
        await end_session(session, f, store.url)
        audit = await audit_feeds(provider, f, store.url, [session], loop.time())
    finally:
        await close_feeds(f)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    row.injected = "disk full for 5 s+ (2 MB tmpfs), then room; 3 resumable streams"
    fill(row, audit, procs, loop.time() - t0)
    return row


async def run_all(provider: Provider, workdir: Path, full: bool, seed: int) -> list[Row]:
    rounds = 10 if full else 3
    return [
        await _run_with(provider, workdir, "pg-backends-terminated", "postgres", rounds, seed,
                        "terminate"),
        await _run_with(provider, workdir, "sqlite-locked", "sqlite", rounds, seed, "lock"),
        await run_full_disk(provider, workdir, seed),
    ]
