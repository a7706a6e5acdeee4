"""The issue's targets, checked on the collected figures, and the results document."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from benchmarks.stats import Collected

if TYPE_CHECKING:
    from benchmarks.suite import Plan

# (numerator, denominator, minimum ratio) — the issues' targets, checked on paired runs.
# Durable capture against the store ceiling: 0.75x since issue 14 (the first goal, 0.9x, could
# not be met on a shared 2-core machine: docs/benchmarks.md).
RATIO_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("durable.ws", "raw_sqlite", 0.75),
    ("durable.lines", "raw_sqlite", 0.75),
    ("durable.sse", "raw_sqlite", 0.75),
    ("durable.ws", "durable.lines", 0.9),
    ("durable.ws_plain", "raw_sqlite", 0.75),
    ("durable.ws_plain", "durable.lines", 0.9),
    ("durable.lines_hash", "raw_sqlite.hash", 0.9),
    ("durable.ws", "naive_loop.ws", 10.0),
    ("durable.lines", "naive_loop.lines", 10.0),
    ("null.ws", "raw_receive.ws_deflate", 0.8),
    ("null.ws_plain", "raw_receive.ws", 0.8),
    ("null.lines", "raw_receive.lines", 0.8),
    ("null.sse", "raw_receive.sse", 0.8),
    ("redundancy2.ws", "durable.ws", 0.5),
    ("redundancy2.lines", "durable.lines", 0.5),
    ("slow_processor.lines", "durable.lines", 0.9),
)
# Ratios shown for insight, with no target.
RATIO_INFO: tuple[tuple[str, str], ...] = (
    ("longline_store", "raw_sqlite"),
    ("durable.lines", "naive_loop_wal.lines"),
    ("null.ws", "raw_receive.ws"),
    ("durable.ws", "raw_receive.ws"),
    ("durable.lines", "raw_receive.lines"),
)
# (rate, minimum events/s) — issue 5: durable capture into PostgreSQL, and the store alone.
RATE_TARGETS: tuple[tuple[str, float], ...] = (
    ("postgres.lines", 100_000.0),
    ("postgres_store", 100_000.0),
)
LATENCY_P99_MS = 10.0
IDLE_KB_PER_STREAM = 12.0  # issue 14 (was 16)
IDLE_CONNECT_S = 30.0


def check(got: Collected) -> list[dict[str, Any]]:
    """Every target with its measured median and whether it is met."""
    out: list[dict[str, Any]] = []
    for num, den, minimum in RATIO_TARGETS:
        ratio = got.ratio(num, den)
        if ratio is not None:
            cpu = got.cpu_ratio(num, den)
            out.append(
                {
                    "target": f"{num} / {den} >= {minimum:g}",
                    "unit": "x",
                    "median": ratio["median"],
                    "min": ratio["min"],
                    "max": ratio["max"],
                    "met": ratio["median"] >= minimum,
                    "cpu_ratio": cpu["median"] if cpu else None,
                }
            )
    rates = got.rate_summaries()
    for name, floor in RATE_TARGETS:
        if name in rates:
            s = rates[name]
            out.append(
                {
                    "target": f"{name} >= {floor:,.0f} events/s",
                    "unit": "events/s",
                    **{k: s[k] for k in ("median", "min", "max")},
                    "met": s["median"] >= floor,
                }
            )
    details = got.detail_summaries()
    for tr in ("ws", "lines"):
        lat = details.get(f"latency.{tr}")
        if lat is not None and "p99_ms" in lat:
            p99 = lat["p99_ms"]
            out.append(
                {
                    "target": f"latency.{tr} p99 <= {LATENCY_P99_MS:g} ms",
                    "unit": "ms",
                    **{k: p99[k] for k in ("median", "min", "max")},
                    "met": p99["median"] <= LATENCY_P99_MS,
                }
            )
    idle = details.get("idle.ws")
    if idle is not None:
        kb = idle["kb_per_stream"]
        out.append(
            {
                "target": f"idle.ws RSS <= {IDLE_KB_PER_STREAM:g} KB per stream",
                "unit": "KB",
                **{k: kb[k] for k in ("median", "min", "max")},
                "met": kb["median"] <= IDLE_KB_PER_STREAM,
            }
        )
        secs = idle.get("connect_s")
        all_in = all(r["connect_s"] is not None for r in idle["runs"])
        out.append(
            {
                "target": f"idle.ws all connected within {IDLE_CONNECT_S:g} s",
                "unit": "s",
                **({k: secs[k] for k in ("median", "min", "max")} if secs else {}),
                "met": all_in and secs is not None and secs["max"] <= IDLE_CONNECT_S,
            }
        )
    return out


def results(got: Collected, plan: Plan) -> dict[str, Any]:
    """The JSON document: figures, ratios, targets."""
    ratios = {}
    pairs = [(num, den) for num, den, _ in RATIO_TARGETS] + list(RATIO_INFO)
    for num, den in pairs:
        r = got.ratio(num, den)
        if r is not None:
            ratios[f"{num} / {den}"] = r
    for size in plan.sizes:
        suffix = "" if size == 200 else f"@{size}"
        for tr in ("ws", "lines"):
            for den in ("raw_sqlite", f"raw_receive.{tr}"):
                r = got.ratio(f"durable.{tr}{suffix}", f"{den}{suffix}")
                if r is not None:
                    ratios[f"durable.{tr}{suffix} / {den}{suffix}"] = r
    return {
        "plan": asdict(plan),
        "rates": got.rate_summaries(),
        "details": got.detail_summaries(),
        "ratios": ratios,
        "targets": check(got),
        "groups": got.groups,
    }
