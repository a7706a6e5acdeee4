"""The seed's options, one function each, and ``compare`` that prices them all.

Each function turns the workload into the option's own line items (how it holds connections)
plus the shared store, processor and network lines of ``lines``; docs/cost.md gives the
formula of every line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from longline.cost.capacity import MIB, Fit, describe, figures, fit, lambda_memory_mb
from longline.cost.context import Ctx, Items, Unpriceable
from longline.cost.lines import (
    LAMBDA_REQUESTS,
    WRITE,
    dynamodb,
    egress,
    finish,
    ipv4,
    processor,
    store_bends,
)
from longline.cost.numbers import GIB, ceil, num
from longline.cost.prices import PriceBook, UnknownPrice
from longline.cost.result import OPTIONS, Comparison, LineItem, OptionCost
from longline.cost.workload import Workload, validate

__all__ = [
    "BUILDERS",
    "compare",
    "ec2_all",
    "ec2_hybrid",
    "fargate_hybrid",
    "lambda_chained",
    "lambda_step_functions",
    "server_fit",
    "stream_steps",
    "task_fit",
]


@dataclass(frozen=True)
class _Chains:
    """The connection functions of options 1 and 2: how many, how big, how often they hand off."""

    conns: int
    chains: int
    memory: int
    cycles: int
    notes: tuple[str, ...]

    @property
    def handoffs(self) -> int:
        return self.chains * self.cycles


def _lambda_memory(c: Ctx, conns: int) -> tuple[int, list[str]]:
    """The function's memory: the user's, raised to the CPU and memory its connections need."""
    w = c.w
    rate = w.events_per_second / w.streams * conns
    label = figures(c).label
    memory = max(w.lambda_memory, lambda_memory_mb(c, conns))
    if memory > c.n("limits", "lambda_max_memory_mb"):
        fix = "lower --connections-per-function"
        if conns == 1:
            fix = "one stream cannot be split across functions"
        raise Unpriceable(
            f"one function would need {num(memory)} MB, more than Lambda's maximum, to "
            f"carry {num(rate)} events/s ({label}); {fix}"
        )
    if memory == w.lambda_memory:
        return memory, []
    return memory, [
        f"Lambda memory raised from {w.lambda_memory} to {memory} MB for {num(rate)} "
        f"events/s and {conns} connection(s) per function ({label})"
    ]


def _chains(c: Ctx) -> _Chains:
    conns = min(c.w.connections_per_function, c.w.streams)
    memory, notes = _lambda_memory(c, conns)
    cycles = ceil(c.seconds / c.w.handoff_interval)
    return _Chains(conns, ceil(Decimal(c.w.streams) / conns), memory, cycles, tuple(notes))


def _functions(c: Ctx, ch: _Chains) -> Items:
    """Each function holds its connections for one invocation, then hands over (overlap billed)."""
    w = c.w
    billed = ch.chains * (c.seconds + ch.cycles * w.overlap)
    return [
        c.item(
            "compute",
            f"connection functions: {ch.chains} x {ch.memory} MB {w.arch}, {num(billed)} s billed "
            f"({num(w.overlap)} s overlap per handoff)",
            billed * ch.memory / 1024,
            "GB-s",
            ("lambda", "gb_second", w.arch),
            meter="lambda_gb_s",
        ),
        c.item(
            "requests",
            f"{num(ch.handoffs)} invocations: one per {num(w.handoff_interval)} s per function",
            ch.handoffs,
            "requests",
            LAMBDA_REQUESTS,
            per=1_000_000,
            meter="lambda_requests",
        ),
    ]


def _handoff_store(c: Ctx, ch: _Chains) -> Items:
    """The lease writes and checkpoint read that make a handoff safe, then the shared lines."""
    w = c.w
    lease = f"handoff lease writes: {w.lease_writes_per_handoff} per handoff"
    lease_units = ch.handoffs * w.lease_writes_per_handoff * c.write_mult
    read = "checkpoint read at each invocation start"
    return [
        c.item("store writes", lease, lease_units, "WRU", WRITE, per=1_000_000),
        c.item(
            "store reads", read, ch.handoffs, "RRU", ("dynamodb", "read_per_million"), per=10**6
        ),
        *dynamodb(c),
        *processor(c),
        *egress(c),
    ]


def lambda_chained(c: Ctx) -> OptionCost:
    """Option 1: functions re-invoke their successor themselves (self-chained handoffs)."""
    ch = _chains(c)
    return finish(c, "lambda", _functions(c, ch) + _handoff_store(c, ch), list(ch.notes))


def lambda_step_functions(c: Ctx) -> OptionCost:
    """Option 2: a Standard state machine loops each function and continues as new in time."""
    w, ch = c.w, _chains(c)
    functions = _functions(c, ch)
    executions = ceil(Decimal(ch.cycles) / w.cycles_per_execution)
    per_chain = ch.cycles * w.transitions_per_handoff + executions * w.transitions_per_execution
    transitions = c.item(
        "orchestration",
        f"state transitions: {ch.chains} x ({num(ch.cycles)} cycles x "
        f"{w.transitions_per_handoff} + {executions} executions x "
        f"{w.transitions_per_execution})",
        ch.chains * per_chain,
        "transitions",
        ("stepfunctions", "standard_per_1000_transitions"),
        per=1000,
        meter="sfn_transitions",
    )
    items = [*functions, transitions, *_handoff_store(c, ch)]
    return finish(c, "lambda_sfn", items, list(ch.notes))


def server_fit(c: Ctx, itype: str, all_processing: bool = False) -> Fit:
    """One instance type against the workload: its memory less the OS, its usable CPU."""
    shape = c.book.instance(itype)
    f = figures(c)
    memory = shape["memory_gib"] * 1024 * MIB - f.os_memory
    cpe = f.all_cpu_per_event if all_processing else f.cpu_per_event
    return fit(c, itype, memory, shape["vcpus"] * shape["baseline"], cpe)


def task_fit(c: Ctx) -> Fit:
    """One Fargate task: its full memory and vCPU (no OS of ours, no burst credits)."""
    w = c.w
    shape = f"Fargate {num(w.fargate_vcpu)} vCPU / {num(w.fargate_memory)} GB"
    return fit(c, shape, w.fargate_memory * 1024 * MIB, w.fargate_vcpu, figures(c).cpu_per_event)


def _server(c: Ctx, itype: str, all_processing: bool) -> OptionCost:
    """Options 3 and 4 on EC2: the instance holds every connection; 4 also stores and processes."""
    w = c.w
    size = server_fit(c, itype, all_processing)
    count = size.count
    what = figures(c).label
    if all_processing and figures(c).measured:
        what = "measured memory; CPU with storage and processors: placeholder"
    label = f"{count} x {itype} ({describe(size)}; {what})"
    items = [c.item("compute", label, count * c.hours, "instance-hours", ("ec2", "hourly", itype))]
    volume = count * w.ebs_gb
    label = f"EBS gp3 root volume: {count} x {num(w.ebs_gb)} GB"
    if all_processing:
        data_gb = ceil(c.max_stored(Decimal(w.event_size + w.item_overhead)) / GIB)
        volume += data_gb
        label += f" + {data_gb} GB for the events kept" if data_gb else ""
    items.append(c.item("storage", label, volume * c.months, "GB-month", ("ebs", "gp3_gb_month")))
    items += ipv4(c, count)
    if not all_processing:
        items += dynamodb(c) + processor(c)
    items += egress(c)
    return finish(c, "ec2_all" if all_processing else "ec2_hybrid", items, [])


def _servers(c: Ctx, all_processing: bool) -> OptionCost:
    """Price the chosen instance type, or with ``auto`` the cheapest one that is priced."""
    if c.w.instance_type != "auto":
        return _server(c, c.w.instance_type, all_processing)
    best: OptionCost | None = None
    chosen = ""
    for itype in c.book.instance_types:
        try:
            option = _server(c, itype, all_processing)
        except (UnknownPrice, Unpriceable):
            continue
        if best is None or option.total < best.total:
            best, chosen = option, itype
    if best is None:
        raise Unpriceable(f"no instance type is priced for {c.w.region}")
    note = f"--instance-type auto chose {chosen}, the cheapest that fits"
    return replace(best, notes=(note, *best.notes))


def ec2_hybrid(c: Ctx) -> OptionCost:
    """Option 3: instances hold the connections and write to DynamoDB; a Lambda processes."""
    return _servers(c, all_processing=False)


def ec2_all(c: Ctx) -> OptionCost:
    """Option 4: instances capture, store on their own volume and process in-process."""
    return _servers(c, all_processing=True)


def fargate_hybrid(c: Ctx) -> OptionCost:
    """Option 3b: Fargate tasks hold the connections; no burst credits, no root volume."""
    w = c.w
    size = task_fit(c)
    tasks = size.count
    shape = f"{tasks} task(s) of {num(w.fargate_vcpu)} vCPU / {num(w.fargate_memory)} GB {w.arch}"
    shape += f" ({describe(size)}; {figures(c).label})"
    items: list[LineItem] = [
        c.item(
            "compute",
            f"{shape}: vCPU",
            tasks * w.fargate_vcpu * c.hours,
            "vCPU-hours",
            ("fargate", "vcpu_hour", w.arch),
        ),
        c.item(
            "compute",
            f"{shape}: memory",
            tasks * w.fargate_memory * c.hours,
            "GB-hours",
            ("fargate", "gb_hour", w.arch),
        ),
    ]
    items += ipv4(c, tasks) + dynamodb(c) + processor(c) + egress(c)
    return finish(c, "fargate_hybrid", items, [])


BUILDERS: dict[str, Callable[[Ctx], OptionCost]] = {
    "lambda": lambda_chained,
    "lambda_sfn": lambda_step_functions,
    "ec2_hybrid": ec2_hybrid,
    "fargate_hybrid": fargate_hybrid,
    "ec2_all": ec2_all,
}


def compare(w: Workload, book: PriceBook) -> Comparison:
    """Price every option for ``w``; an option needing an unknown price carries the reason."""
    validate(w, book)
    options = []
    for key, build in BUILDERS.items():
        try:
            options.append(build(Ctx(w, book)))
        except (UnknownPrice, Unpriceable) as exc:
            options.append(OptionCost(key, OPTIONS[key], error=str(exc)))
    return Comparison(w, tuple(options))


def stream_steps(w: Workload, book: PriceBook, top: int) -> set[int]:
    """Stream counts up to ``top`` where options 3, 3b and 4 change shape, with the count before.

    An instance or task is added after every multiple of what one holds, and the store's
    transaction parts bend or step (``lines.store_bends``); between two of these counts the
    totals of those options are straight lines in the number of streams, so pricing these counts
    finds every time their staircases trade places.
    """
    c = Ctx(w, book)
    types = book.instance_types if w.instance_type == "auto" else [w.instance_type]
    sizes: set[int] = set()
    for itype in [None, *types]:
        try:
            sizes.add((task_fit(c) if itype is None else server_fit(c, itype)).streams_each)
        except Unpriceable:
            continue
    steps = {n for size in sizes for k in range(size, top + 1, size) for n in (k, k + 1)}
    for bend in store_bends(c, top):
        whole = int(bend.to_integral_value(ROUND_FLOOR))
        steps |= {whole, whole + 1}
    return {n for n in steps if 1 <= n <= top}
