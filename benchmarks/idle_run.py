"""Idle streams in real ``longline run`` processes: RSS per stream as issue 14 states it.

``python -m benchmarks.idle_run --streams 10000 --transport ws``: starts local providers (each
its own process, streams dealt to them in turn, each on its own loopback address when
``--hosts`` > 1), writes a config of N idle streams (``total=0`` feeds) and runs
``python -m longline run`` on it, once with ``--baseline`` streams (10) and once with N. Every
stream is counted live from the store's status (``longline status``'s data, read by this
process every ``POLL`` seconds, so the reading costs the measured process nothing); once all
are live it waits ``--hold`` seconds, reads the RSS of the ``run`` process and its children,
and checks that every stream is still live on its first connection (no reconnect: pings or
keep-alives answered all along). KB per stream = (RSS at N - RSS at the baseline) /
(N - baseline). ``--workers W`` runs W ``longline run --worker`` processes sharing one SQLite
store instead, each capped at N/W streams (``--max-streams``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.provider import ProviderProcess
from benchmarks.serve import raise_fd_limit
from longline.stores import open_store

POLL = 1.0
KEEPALIVE = 10  # seconds between an idle sse/lines feed's keep-alives


def tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB (Linux)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return total


def _url(transport: str, host: str, port: int, name: str, tls: bool) -> str:
    if transport == "ws":
        return f"{'wss' if tls else 'ws'}://{host}:{port}/ws/{name}?total=0"
    scheme = "https" if tls else "http"
    return f"{scheme}://{host}:{port}/{transport}/{name}?total=0&keepalive={KEEPALIVE}"


def write_config(
    path: Path, db: Path, n: int, transport: str, providers: list[tuple[str, int]], ca: str | None
) -> None:
    streams = []
    for i in range(n):
        host, port = providers[i % len(providers)]
        s: dict[str, Any] = {
            "name": f"idle{i}",
            "transport": transport,
            "url": _url(transport, host, port, f"idle{i}", ca is not None),
            "key": "$.id",
        }
        if ca is not None:
            s["tls"] = {"ca_file": ca}
        streams.append(s)
    # A config file is YAML; JSON is YAML. connect_rate: the default 500/s would make the
    # connect time at least N/500 s; the targets (18,000 in 60 s, 50,000 in 90 s)
    # need more.
    data = {"store": f"sqlite:///{db}", "connect_rate": 2000, "streams": streams}
    path.write_text(json.dumps(data))


def count(store_url: str) -> tuple[int, int]:
    """(streams live, reconnects) from the status the running processes save to the store
    (about once a second): one query, no config parsing, so polling stays cheap."""

    async def read() -> dict[str, Any]:
        async with open_store(store_url, create=False) as store:
            return await store.get_status()

    saved = asyncio.run(read())
    live = sum(st.get("state") == "live" for st in saved.values())
    reconnects = sum(int(st.get("reconnects", 0)) for st in saved.values())
    return live, reconnects


def run_once(
    n: int,
    transport: str,
    providers: list[tuple[str, int]],
    hold: float,
    timeout: float,
    ca: str | None,
    workers: int,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config, db = Path(tmp) / "idle.yaml", Path(tmp) / "idle.db"
        write_config(config, db, n, transport, providers, ca)
        init = [sys.executable, "-m", "longline", "init", str(config)]
        subprocess.run(init, check=True, capture_output=True)
        cmd = [sys.executable, "-m", "longline", "run", str(config), "--log-level", "error"]
        procs = []
        start = time.perf_counter()
        for w in range(workers):
            extra = [] if workers == 1 else ["--worker", "--worker-id", f"w{w}"]
            extra += [] if workers == 1 else ["--max-streams", str(-(-n // workers))]
            log = open(Path(tmp) / f"run{w}.log", "w")  # noqa: SIM115 (closed with the dir)
            procs.append(subprocess.Popen(cmd + extra, stdout=log, stderr=log))
        connected_at = None
        live = 0
        try:
            while time.perf_counter() - start < timeout:
                time.sleep(POLL)
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("longline run ended early")
                live, _ = count(f"sqlite:///{db}")
                if live == n:
                    connected_at = time.perf_counter() - start
                    break
            held_from = time.perf_counter()
            time.sleep(hold)
            rss = sum(tree_rss_kb(p.pid) for p in procs)
            live_after, reconnects = count(f"sqlite:///{db}")
            held = time.perf_counter() - held_from
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            codes = [p.wait(300) for p in procs]
        logs = "".join((Path(tmp) / f"run{w}.log").read_text()[-500:] for w in range(workers))
    return {
        "streams": n,
        "transport": transport,
        "workers": workers,
        "connect_s": connected_at,
        "live_at_connect": live,
        "held_s": round(held, 1),
        "live_after_hold": live_after,
        "reconnects": reconnects,
        "rss_kb": rss,
        "exit_codes": codes,
        "log_tail": logs[-300:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=10)
    parser.add_argument("--transport", choices=("ws", "sse", "lines"), default="ws")
    parser.add_argument("--providers", type=int, default=1, help="provider processes")
    parser.add_argument("--hosts", type=int, default=1, help="loopback addresses 127.0.0.1..N")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds connected before RSS")
    parser.add_argument("--baseline-hold", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tls", action="store_true", help="wss:// or https://, a private CA")
    args = parser.parse_args()
    raise_fd_limit()
    env_tls = None
    rows = []
    with tempfile.TemporaryDirectory() as tls_dir:
        cert = key = None
        if args.tls:
            from longline.testing.tls import make_ca

            made = make_ca(Path(tls_dir))
            env_tls, cert, key = str(made.ca_file), str(made.server_cert), str(made.server_key)
        providers = []
        stack = []
        try:
            for i in range(args.providers):
                host = f"127.0.0.{1 + i % args.hosts}"
                p = ProviderProcess(cert, key, host=host).__enter__()
                stack.append(p)
                providers.append((host, p.port))
            for n, hold in ((args.baseline, args.baseline_hold), (args.streams, args.hold)):
                row = run_once(
                    n, args.transport, providers, hold, args.timeout, env_tls, args.workers
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            for p in stack:
                p.__exit__(None, None, None)
    base, big = rows
    per = (big["rss_kb"] - base["rss_kb"]) / (big["streams"] - base["streams"])
    summary = {
        "transport": args.transport + (" (tls)" if env_tls else ""),
        "streams": args.streams,
        "workers": args.workers,
        "kb_per_stream": round(per, 2),
        "connect_s": big["connect_s"],
        "held_s": big["held_s"],
        "live_after_hold": big["live_after_hold"],
        "reconnects": big["reconnects"],
        "pid": os.getpid(),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
