"""How many streams and events one server, task or function carries, and which limit binds.

A server holds ``floor((memory - OS - process) / memory per stream)`` streams and carries
``usable CPU / CPU per event`` events a second; a workload needs as many as the tighter of the
two asks for. The figures are the workload's measurements, else the price file's placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from longline.cost.context import Ctx, Unpriceable
from longline.cost.numbers import ceil, num
from longline.cost.result import OptionCost

__all__ = [
    "MIB",
    "Figures",
    "Fit",
    "describe",
    "figures",
    "fit",
    "lambda_memory_mb",
    "per_thousand_connection_months",
]

MIB = Decimal(2**20)


@dataclass(frozen=True)
class Figures:
    """Sizing figures in bytes and CPU-seconds; ``measured`` when the workload carried them."""

    memory_per_stream: Decimal
    process_memory: Decimal
    os_memory: Decimal
    cpu_per_event: Decimal
    all_cpu_per_event: Decimal  # option 4: capture, store and processors (placeholder)
    measured: bool

    @property
    def label(self) -> str:
        return "measured" if self.measured else "placeholder capacity"


def figures(c: Ctx) -> Figures:
    """The workload's measurements where given, the price file's ``[capacity]`` otherwise."""
    w = c.w

    def mib(key: str) -> Decimal:
        return c.n("capacity", key) * MIB

    capture = 1 / c.n("capacity", "capture_events_per_vcpu_second")
    return Figures(
        memory_per_stream=mib("stream_mib") if w.memory_per_stream is None else w.memory_per_stream,
        process_memory=mib("process_mib") if w.process_memory is None else w.process_memory,
        os_memory=mib("os_mib"),
        cpu_per_event=capture if w.cpu_per_event is None else w.cpu_per_event,
        all_cpu_per_event=1 / c.n("capacity", "all_events_per_vcpu_second"),
        measured=None not in (w.memory_per_stream, w.process_memory, w.cpu_per_event),
    )


@dataclass(frozen=True)
class Fit:
    """One shape against the workload: what one holds, how many are needed and why."""

    shape: str
    streams_each: int
    events_each: Decimal
    by_memory: int
    by_cpu: int

    @property
    def count(self) -> int:
        return max(1, self.by_memory, self.by_cpu)

    @property
    def binding(self) -> str:
        """``CPU`` when the event rate needs more than the streams do, else ``memory``."""
        return "CPU" if self.by_cpu > self.by_memory else "memory"


def fit(c: Ctx, shape: str, memory: Decimal, cpu: Decimal, cpu_per_event: Decimal) -> Fit:
    """``memory`` bytes left after the OS (the process is taken here) and ``cpu`` usable vCPU."""
    f = figures(c)
    room = ((memory - f.process_memory) / f.memory_per_stream).to_integral_value(ROUND_FLOOR)
    if room < 1 or cpu <= 0:
        raise Unpriceable(f"{shape} has no room for a longline process ({f.label})")
    return Fit(
        shape,
        int(room),
        cpu / cpu_per_event,
        ceil(Decimal(c.w.streams) / room),
        ceil(c.w.events_per_second * cpu_per_event / cpu),
    )


def lambda_memory_mb(c: Ctx, conns: int) -> int:
    """MB one connection function needs for ``conns`` connections at their share of events/s."""
    f = figures(c)
    rate = c.w.events_per_second / c.w.streams * conns
    return max(
        ceil(rate * f.cpu_per_event * c.n("limits", "lambda_mb_per_vcpu")),
        ceil((f.process_memory + f.memory_per_stream * conns) / MIB),
    )


def per_thousand_connection_months(option: OptionCost, c: Ctx) -> Decimal:
    """The option's total over ``streams x days / month`` connection-months, per 1,000."""
    return option.total * 1000 / (c.w.streams * c.months)


def describe(fit_: Fit) -> str:
    """``116 streams / 500 events/s each, memory binds`` for a line item's label."""
    return (
        f"{num(fit_.streams_each)} streams / {num(fit_.events_each.quantize(Decimal(1)))} "
        f"events/s each, {fit_.binding} binds"
    )
