"""longline's own measured figures, the ones that size servers: memory per stream, CPU per event.

They come from the benchmark results file (``python -m benchmarks`` writes
``benchmarks/results/latest.json``), from flags, or, where neither is at hand (an installed
package has no ``benchmarks/``), from the figures docs/cost.md documents. Only the JSON is read:
this package imports nothing else of longline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from longline.cost.prices import CostError

__all__ = [
    "DEFAULT_PATH",
    "DOCUMENTED",
    "DOCUMENTED_RUN",
    "TRANSPORTS",
    "Measurements",
    "documented",
    "load_measurements",
]

DEFAULT_PATH = Path("benchmarks") / "results" / "latest.json"
TRANSPORTS = ("ws", "sse", "lines")
KIB = Decimal(1024)

# The medians of `python -m benchmarks capture` of 2026-11-26 (docs/benchmarks.md), per
# transport: idle RSS per stream (KiB), the process before any stream (KiB), CPU per event of
# durable capture into SQLite (µs). Only ws streams were measured idle; sse and lines use ws's.
DOCUMENTED_RUN = "2026-11-26T07:34:02+00:00"
DOCUMENTED: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "ws": (Decimal("22.3136"), Decimal(53484), Decimal("6.22165")),
    "sse": (Decimal("22.3136"), Decimal(53484), Decimal("5.491406666666675")),
    "lines": (Decimal("22.3136"), Decimal(53484), Decimal("4.475140000000006")),
}


@dataclass(frozen=True)
class Measurements:
    """The figures that size a server, in bytes and seconds, and where each came from."""

    transport: str
    memory_per_stream: Decimal
    process_memory: Decimal
    cpu_per_event: Decimal
    source: str


def documented(transport: str = "ws", why: str = "") -> Measurements:
    """The figures docs/cost.md documents; ``why`` says why no file was used."""
    kib, process_kib, us = DOCUMENTED[transport]
    note = "" if transport == "ws" else f"; idle memory of {transport} not measured: ws's"
    return Measurements(
        transport,
        kib * KIB,
        process_kib * KIB,
        us / 10**6,
        f"documented figures of the {DOCUMENTED_RUN[:10]} benchmarks{note}{why}",
    )


def _median(details: dict[str, Any], name: str, key: str) -> Decimal | None:
    value = details.get(name, {}).get(key, {})
    value = value.get("median") if isinstance(value, dict) else None
    if isinstance(value, int | Decimal) and not isinstance(value, bool) and value > 0:
        return Decimal(value)
    return None


def load_measurements(path: str | Path, transport: str = "ws") -> Measurements:
    """Read the medians of ``idle.<transport>`` and ``cpu.durable.<transport>`` from ``path``.

    A transport without an idle figure in the file takes ws's from the same file (the report
    says so); a file that cannot be read or lacks ws's figures is refused, naming ``path``.
    """
    where = str(path)
    try:
        doc = json.loads(Path(path).read_text("utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise CostError(f"cannot read {where}: {exc.strerror or exc}", "measurements") from exc
    except ValueError as exc:
        raise CostError(f"{where} is not JSON: {exc}", "measurements") from exc
    details = doc.get("details") if isinstance(doc, dict) else None
    if not isinstance(details, dict):
        raise CostError(f"{where} has no 'details' (a python -m benchmarks file?)", "measurements")
    idle = transport if f"idle.{transport}" in details else "ws"
    kib = _median(details, f"idle.{idle}", "kb_per_stream")
    process_kib = _median(details, f"idle.{idle}", "rss_start_kb")
    us = _median(details, f"cpu.durable.{transport}", "us_per_event")
    missing = [
        name
        for name, value in (
            (f"idle.{idle}.kb_per_stream", kib),
            (f"idle.{idle}.rss_start_kb", process_kib),
            (f"cpu.durable.{transport}.us_per_event", us),
        )
        if value is None
    ]
    if missing or kib is None or process_kib is None or us is None:
        raise CostError(f"{where} lacks a positive median for {', '.join(missing)}", "measurements")
    note = "" if idle == transport else f"; idle memory of {transport} not in it: ws's"
    return Measurements(
        transport,
        kib * KIB,
        process_kib * KIB,
        us / 10**6,
        f"{where}, run {doc.get('started', '?')}: medians of idle.{idle} and "
        f"cpu.durable.{transport}{note}",
    )
