"""Worker mode on PostgreSQL: 1, 2 and 3 `longline run --worker` processes sharing 300 streams.

``python -m benchmarks.workers [--streams 300] [--workers 1 2 3] [--ttl 5]`` measures, for each
count N of workers, on a fresh schema of the PostgreSQL server (``LONGLINE_TEST_POSTGRES``, as
for the tests) and the local provider in its own process:

- *spread*: from starting the N workers (all at once) until every stream is leased (unexpired)
  by one of them and the counts differ by at most one;
- *capture*: the streams carry ``--events`` each, unpaced; events/s stored over the whole
  capture (from the start until every event is stored), and per worker (that over N);
- *takeover* (N >= 2): one worker is SIGKILLed while the streams are paced (a live feed); the
  seconds from the kill until every stream it held has a new owner, and until each of them has
  stored a new event again.

Prints one JSON line per N and a table; the figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from benchmarks.provider import ProviderProcess
from benchmarks.stores import PG_SERVER, pg_schema
from longline.stores import Store, open_store


def _config(path: Path, url: str, provider: ProviderProcess, names: list[str],
            **feed: object) -> None:
    streams = [
        {
            "name": n,
            "transport": "lines",
            "key": "$.id",
            "cursor": "$.id",
            "resume": {"query": "since"},
            "url": provider.url("lines", n, since=0, **feed),
            "backoff": {"initial": "50ms", "max": "500ms"},
        }
        for n in names
    ]
    path.write_text(yaml.safe_dump({"store": url, "streams": streams}))


async def _start(config: Path, worker: str, ttl: float, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "longline", "--log-level", "WARNING", "run", str(config),
            "--worker", "--worker-id", worker, "--lease-ttl", f"{ttl}s",
            stdout=asyncio.subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


async def _stop(procs: dict[str, asyncio.subprocess.Process]) -> None:
    for proc in procs.values():
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _held(store: Store, live: set[str]) -> Counter[str]:
    now = time.time()
    return Counter(
        lease.owner
        for lease in (await store.leases()).values()
        if lease.owner in live and lease.expires_at > now
    )


async def _until_even(store: Store, live: set[str], streams: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        held = await _held(store, live)
        if (sum(held.values()) == streams and len(held) == len(live)
                and max(held.values()) - min(held.values()) <= 1):
            return time.monotonic() - t0
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no even spread over {sorted(live)} within {timeout:.0f} s")


async def _stored(store: Store) -> dict[str, int]:
    return {n: t.events for n, t in (await store.totals()).items()}


async def one_count(n: int, streams: int, events: int, ttl: float, work: Path) -> dict[str, Any]:
    names = [f"w{i:03d}" for i in range(streams)]
    ids = [chr(ord("A") + i) for i in range(n)]
    out: dict[str, Any] = {"workers": n, "streams": streams, "events_per_stream": events}
    with ProviderProcess() as provider:
        # 1. Spread and capture: unpaced feeds of `events` each.
        async with pg_schema(PG_SERVER) as url:
            cfg = work / f"cap{n}.yaml"
            _config(cfg, url, provider, names, total=events)
            store = open_store(url)
            await store.open()
            t0 = time.monotonic()
            procs = {w: await _start(cfg, w, ttl, work / f"cap{n}{w}.log") for w in ids}
            try:
                out["spread_s"] = round(await _until_even(store, set(ids), streams, 120), 2)
                want = streams * events
                while sum((await _stored(store)).values()) < want:
                    if time.monotonic() - t0 > 600:
                        raise RuntimeError("capture did not finish within 600 s")
                    await asyncio.sleep(0.2)
                took = time.monotonic() - t0
                out["events_per_s"] = round(want / took)
                out["events_per_s_per_worker"] = round(want / took / n)
            finally:
                await _stop(procs)
                await store.close()
        if n < 2:
            return out
        # 2. Takeover: paced feeds, one worker SIGKILLed once the spread is even.
        async with pg_schema(PG_SERVER) as url:
            cfg = work / f"take{n}.yaml"
            _config(cfg, url, provider, names, rate=5)
            store = open_store(url)
            await store.open()
            procs = {w: await _start(cfg, w, ttl, work / f"take{n}{w}.log") for w in ids}
            try:
                await _until_even(store, set(ids), streams, 120)
                await asyncio.sleep(2 * ttl)  # settled: its leases are plain, renewed ones
                victim = ids[0]
                mine = [s for s, lease in (await store.leases()).items() if lease.owner == victim]
                before = await _stored(store)
                procs[victim].send_signal(signal.SIGKILL)
                t_kill = time.monotonic()
                owned: dict[str, float] = {}
                storing: dict[str, float] = {}
                while len(storing) < len(mine):
                    if time.monotonic() - t_kill > 120:
                        raise RuntimeError("the dead worker's streams were not taken over")
                    leases = await store.leases()
                    now_stored = await _stored(store)
                    at = time.monotonic() - t_kill
                    for s in mine:
                        if s not in owned and leases[s].owner != victim:
                            owned[s] = at
                        if s in owned and s not in storing and now_stored[s] > before[s] + 1:
                            storing[s] = at
                    await asyncio.sleep(0.1)
                out["killed_streams"] = len(mine)
                out["takeover_owned_s"] = round(max(owned.values()), 2)
                out["takeover_storing_s"] = round(max(storing.values()), 2)
            finally:
                await _stop(procs)
                await store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--events", type=int, default=1000, help="per stream, capture phase")
    parser.add_argument("--ttl", type=float, default=5.0, help="lease TTL, seconds")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            row = asyncio.run(one_count(n, args.streams, args.events, args.ttl, Path(tmp)))
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("| workers | even spread after, s | events/s | per worker | takeover: owned, s "
          "| takeover: storing, s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['spread_s']} | {r['events_per_s']:,} "
              f"| {r['events_per_s_per_worker']:,} | {r.get('takeover_owned_s', '-')} "
              f"| {r.get('takeover_storing_s', '-')} |")


if __name__ == "__main__":
    main()
