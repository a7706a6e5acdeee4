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
GROUPS = (
    "baselines",
    "throughput",
    "redundancy",
    "sweep",
    "latency",
    "processor",
    "stores",
    "idle",
)


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
    # capture --only merges into the published results (and docs) unless told otherwise;
    # with --no-docs it writes partial.json, leaving latest.json consistent with the docs
    partial = args.mode == "capture" and only is not None and args.out is None
    default_out = (
        "smoke.json"
        if args.mode == "smoke"
        else "partial.json"
        if partial and args.no_docs
        else "latest.json"
    )
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
    merged = False
    if partial and only and not args.no_docs and out.exists():
        doc, merged = merge(json.loads(out.read_text()), doc, only), True
    report.write_json(doc, out)
    print(f"results: {out}" + (f" (the {', '.join(sorted(only or ()))} figures)" if merged else ""))
    if args.mode == "capture" and not args.no_docs and (not only or merged):
        docs = ROOT / "docs" / "benchmarks.md"
        if report.update_docs(doc, docs):
            print(f"tables: {docs}")
    for t in doc["targets"]:
        if args.mode == "capture":
            print(f"{'met   ' if t['met'] else 'MISSED'} {t['target']}")
    return 0


def merge(old: dict[str, Any], new: dict[str, Any], only: set[str]) -> dict[str, Any]:
    """``old`` results with the figures of the groups in ``only`` replaced by ``new``'s, so a
    partial capture updates the published tables without re-measuring everything; each such
    update is listed under ``updates`` (the header and the rest stay ``old``'s)."""
    got, fresh = stats.Collected.from_doc(old), stats.Collected.from_doc(new)
    tag = "+".join(sorted(only))
    if "load" in fresh.details:  # the run's load average, kept apart from the full run's
        fresh.details[f"load.{tag}"] = fresh.details.pop("load")
    got.replace_groups(fresh, only)
    plan_doc = {**new["plan"], **old["plan"]}  # settings a newer harness added come from new
    plan = suite.Plan(**{**plan_doc, "sizes": tuple(plan_doc["sizes"])})
    update = {k: new[k] for k in ("command", "started", "duration_s")}
    update.update(groups=sorted(only), runs=new["plan"]["runs"], events=new["plan"]["events"])
    kept = [u for u in old.get("updates", []) if not set(u["groups"]) <= only]
    return {**old, **targets.results(got, plan), "updates": [*kept, update]}


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
