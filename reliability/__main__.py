"""``python -m reliability [--full] [--only NAME ...]``: run the campaign, print the table.

Without ``--full`` it is the CI-sized run (a few minutes); it exits 1 when any row lost,
doubled or corrupted an event, leaked, or failed otherwise. ``--full`` also writes
docs/reliability.md (``--only``: those families' figures replace theirs, the others stay).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from longline.testing.provider import Provider
from reliability import (
    credentials,
    fuzz,
    kills,
    network,
    resources,
    secrets,
    sinks,
    storefaults,
    storeoutages,
    workers,
)
from reliability.harness import kill_leftovers
from reliability.report import (
    FamilyRun,
    Row,
    command_line,
    details,
    load_runs,
    render,
    save_runs,
    table,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
INTRO = (Path(__file__).resolve().parent / "intro.md")

Scenario = Callable[[Provider, Path, bool, int], Awaitable[list[Row]]]


async def _kills(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    n = 60 if full else 5
    return [
        await kills.run_kills(provider, work, "sqlite", n, seed),
        await kills.run_kills(provider, work, "postgres", n, seed),
    ]


async def _network(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return [await network.run_network(provider, work, 1000 if full else 100, seed)]


async def _stores(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await storefaults.run_all(provider, work, full, seed)


async def _outages(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await storeoutages.run_all(provider, work, full, seed)


async def _sinks(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await sinks.run_sinks(provider, work, full, seed)


async def _resources(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await resources.run_all(provider, work, full)


async def _credentials(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return [await credentials.run_credentials(provider, work)]


async def _workers(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await workers.run_all(provider, work, full, seed)


async def _fuzz(provider: Provider, work: Path, full: bool, seed: int) -> list[Row]:
    return await asyncio.to_thread(fuzz.run_all, 1_000_000 if full else 100_000, seed)


SCENARIOS: dict[str, Scenario] = {
    "kills": _kills,
    "network": _network,
    "stores": _stores,
    "outages": _outages,
    "sinks": _sinks,
    "resources": _resources,
    "credentials": _credentials,
    "workers": _workers,
    "fuzz": _fuzz,
}


async def campaign(full: bool, only: list[str], seed: int, work: Path) -> dict[str, FamilyRun]:
    """Run the chosen families in order; each one's rows and how long it took."""
    runs: dict[str, FamilyRun] = {}
    async with Provider() as provider:
        for name, scenario in SCENARIOS.items():
            if only and name not in only:
                continue
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            t = time.monotonic()
            try:
                got = await scenario(provider, work, full, seed)
            except Exception as exc:  # a scenario that crashes is a failed row, not a traceback
                got = [Row(name, "-", failures=[f"scenario crashed: {type(exc).__name__}: {exc}"])]
            runs[name] = FamilyRun.now(got, command_line(), full, time.monotonic() - t)
            print(table(got), file=sys.stderr, flush=True)
            print(f"   {name}: {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        if not only or "secrets" in only:
            t = time.monotonic()
            secret_rows = [await secrets.scan(work)]
            # A partial run's scan covers only its own outputs: filed apart from the whole one.
            scanned = [n for n in only if n != "secrets"]
            key = f"secrets ({', '.join(scanned)})" if scanned else "secrets"
            runs[key] = FamilyRun.now(secret_rows, command_line(), full, time.monotonic() - t)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full campaign; writes the doc")
    parser.add_argument("--only", nargs="*", default=[], choices=[*SCENARIOS, "secrets"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--doc", type=Path, default=None, help="write the doc here (any mode)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="longline-reliability-") as tmp:
        try:
            runs = asyncio.run(campaign(args.full, args.only, args.seed, Path(tmp)))
        finally:
            kill_leftovers()
    rows = [r for run in runs.values() for r in run.rows]
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    if failed:  # what was lost where, so a failed CI run says more than a count
        print(details(failed))
    doc = args.doc or (DOC if args.full else None)
    if doc is not None:
        figures = doc.with_suffix(".json")
        recorded = load_runs(figures) if args.only else {}
        recorded.update(runs)
        save_runs(figures, recorded)
        doc.write_text(render(recorded, [*SCENARIOS, "secrets"], INTRO.read_text()))
        print(f"wrote {doc} and {figures.name}")
    bad = [r.scenario for r in rows if not r.ok]
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
