"""``python -m benchmarks capture`` (the published suite) and ``python -m benchmarks smoke`` (CI).

capture: every scenario, 3 runs, results in benchmarks/results/latest.json and the generated
section of docs/benchmarks.md. smoke: the same code on tiny inputs in a few seconds; it checks
that the harness works and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, report, stats, suite, targets

ROOT = Path(__file__).resolve().parent.parent
GROUPS = ("baselines", "throughput", "redundancy", "sweep", "latency", "processor", "idle")


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, write results; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "mode",
        choices=("capture", "smoke", "report"),
        help="report: re-render docs/benchmarks.md from the results JSON, measuring nothing",
    )
    parser.add_argument("--runs", type=int, help="runs per scenario (default: 3, smoke: 1)")
    parser.add_argument("--events", type=int, help="events per throughput run")
    parser.add_argument("--idle-streams", type=int, help="streams of the idle test")
    parser.add_argument("--only", help=f"comma-separated groups to run, of: {', '.join(GROUPS)}")
    parser.add_argument("--out", type=Path, help="results JSON (default per mode)")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    plan = suite.FULL if args.mode == "capture" else suite.SMOKE
    changes: dict[str, Any] = {}
    if args.runs:
        changes.update(runs=args.runs, idle_runs=min(args.runs, plan.idle_runs or args.runs))
    if args.events:
        changes["events"] = args.events
    if args.idle_streams:
        changes["idle_streams"] = args.idle_streams
    plan = dataclasses.replace(plan, **changes)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(GROUPS):
        parser.error(f"unknown group(s): {', '.join(sorted(only - set(GROUPS)))}")
    default_out = "smoke.json" if args.mode == "smoke" else "latest.json"
    out = args.out or ROOT / "benchmarks" / "results" / default_out
    if args.mode == "report":
        return rerender(out)

    started = datetime.now(UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    doc = suite.execute(plan, only)
    doc = {
        "command": shlex.join(["python", "-m", "benchmarks", *(argv or sys.argv[1:])]),
        "mode": args.mode,
        "started": started.isoformat(),
        "duration_s": time.perf_counter() - t0,
        "machine": machine.describe(),
        **doc,
    }
    report.write_json(doc, out)
    print(f"results: {out}")
    if args.mode == "capture" and not args.no_docs and not only:
        docs = ROOT / "docs" / "benchmarks.md"
        if report.update_docs(doc, docs):
            print(f"tables: {docs}")
    for t in doc["targets"]:
        if args.mode == "capture":
            print(f"{'met   ' if t['met'] else 'MISSED'} {t['target']}")
    return 0


def rerender(path: Path) -> int:
    """Recompute ratios and targets from ``path`` and rewrite it and the docs tables."""
    doc = json.loads(path.read_text())
    got = stats.Collected.from_doc(doc)
    plan = suite.Plan(**{**doc["plan"], "sizes": tuple(doc["plan"]["sizes"])})
    doc.update(targets.results(got, plan))
    report.write_json(doc, path)
    docs = ROOT / "docs" / "benchmarks.md"
    if report.update_docs(doc, docs):
        print(f"tables: {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
