"""What each way of running a connection manager on AWS costs for a given workload.

The seed compares four options by a single minimum price each; a real choice depends on the
number of streams, the event rate and size, and the charges around the compute (requests, state
transitions, store writes, storage, public addresses). This module prices all of them as line
items with exact ``Decimal`` arithmetic from the packaged ``prices.toml``; it rounds nothing and
does no I/O beyond reading that file. docs/cost.md states every formula.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "OPTIONS",
    "Comparison",
    "CostError",
    "LineItem",
    "OptionCost",
    "PriceBook",
    "UnknownPrice",
    "Workload",
    "compare",
    "load_prices",
    "validate",
]

ARCHS = ("x86_64", "arm64")
WRITE_MODES = ("transactional", "standard")
FARGATE_SHAPES = {  # vCPU -> (min GB, max GB) of task memory
    Decimal("0.25"): (Decimal("0.5"), Decimal(2)),
    Decimal("0.5"): (Decimal(1), Decimal(4)),
    Decimal(1): (Decimal(2), Decimal(8)),
    Decimal(2): (Decimal(4), Decimal(16)),
    Decimal(4): (Decimal(8), Decimal(30)),
    Decimal(8): (Decimal(16), Decimal(60)),
    Decimal(16): (Decimal(32), Decimal(120)),
}
OPTIONS: dict[str, str] = {
    "lambda": "1. Lambda (self-chained handoffs)",
    "lambda_sfn": "2. Lambda + Step Functions",
    "ec2_hybrid": "3. EC2 holds connections, serverless processing",
    "fargate_hybrid": "3b. Fargate holds connections, serverless processing",
    "ec2_all": "4. EC2 does all processing",
}
GIB = Decimal(2**30)
MILLION = Decimal(1_000_000)


class CostError(ValueError):
    """A workload or price file the model cannot price; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownPrice(CostError):
    """A price the data file marks as unknown for a region: refused rather than guessed."""


def ceil(x: Decimal) -> int:
    """Round up to a whole count (instances, invocations, billing units)."""
    return int(x.to_integral_value(rounding=ROUND_CEILING))


def num(x: Decimal | int) -> str:
    """Exact plain notation with thousands separators: 2880 -> '2,880', 5.40 -> '5.4'."""
    d = Decimal(x).normalize()
    return format(d, ",f")


def _short(x: Decimal) -> str:
    """Four significant figures, for labels only (quantities stay exact)."""
    return num(Decimal(f"{x:.4g}"))


def usd(x: Decimal) -> str:
    """An exact dollar figure, no rounding: for arithmetic shown to the user."""
    return ("-$" if x < 0 else "$") + num(abs(x))


# --------------------------------------------------------------------------------------------
# Prices


class PriceBook:
    """The parsed ``prices.toml``: lookups that refuse unknown prices instead of guessing."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.data = data
        self.origin = origin

    @property
    def regions(self) -> list[str]:
        return sorted(self.data.get("regions", {}))

    @property
    def instance_types(self) -> list[str]:
        return list(self.data.get("instances", {}))

    def source(self, service: str) -> str:
        return str(self.data.get("sources", {}).get(service, "?"))

    def number(self, table: str, key: str) -> Decimal:
        """A non-price figure (limits, capacity, free tier)."""
        try:
            return Decimal(self.data[table][key])
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise CostError(f"{self.origin}: [{table}] lacks a number for '{key}'") from exc

    def instance(self, name: str) -> dict[str, Decimal]:
        shape = self.data.get("instances", {}).get(name)
        if shape is None:
            known = ", ".join(self.instance_types)
            raise CostError(
                f"unknown instance type '{name}' (--instance-type); known: auto, {known}",
                "instance_type",
            )
        return {k: Decimal(v) for k, v in shape.items()}

    def uncertain(self, region: str, service: str) -> bool:
        return bool(self.data["regions"][region].get(service, {}).get("uncertain", False))

    def price(self, region: str, service: str, key: str, variant: str | None = None) -> Decimal:
        """One list price; raises UnknownPrice, naming it and its source, when it is unknown."""
        table = self.data["regions"][region].get(service, {})
        value = table.get(key, "unknown")
        if variant is not None:
            value = value.get(variant, "unknown") if isinstance(value, dict) else "unknown"
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return Decimal(value)
        what = f"{service}.{key}" + (f"[{variant}]" if variant else "")
        raise UnknownPrice(
            f"the price {what} is not known for {region} (see {self.origin}; "
            f"source: {self.source(service)}); it is not guessed"
        )


def load_prices(path: str | Path | None = None) -> PriceBook:
    """Read the packaged price file (or ``path``), keeping every number an exact Decimal."""
    try:
        if path is None:
            text = resources.files("longline.aws").joinpath("prices.toml").read_text("utf-8")
            origin = "longline/aws/prices.toml"
        else:
            text = Path(path).read_text("utf-8")
            origin = str(path)
        data = tomllib.loads(text, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CostError(f"cannot read price file: {exc}", "prices") from exc
    if not data.get("regions"):
        raise CostError(f"{origin} defines no [regions]", "prices")
    return PriceBook(data, origin)


# --------------------------------------------------------------------------------------------
# Workload


@dataclass(frozen=True)
class Workload:
    """What to price; field names are the CLI flags (``event_size`` -> ``--event-size``).

    Durations are seconds, sizes bytes, Lambda memory MB, Fargate memory GB. ``events_per_second``
    is the total over all streams. ``instance_type="auto"`` picks the cheapest shape that fits.
    """

    region: str = "us-east-1"
    streams: int = 1
    events_per_second: Decimal = Decimal(1)
    event_size: int = 500
    lambda_memory: int = 128
    arch: str = "arm64"
    connections_per_function: int = 1
    handoff_interval: Decimal = Decimal(840)
    overlap: Decimal = Decimal(10)
    transitions_per_handoff: int = 3
    transitions_per_execution: int = 2
    cycles_per_execution: int = 1000
    lease_writes_per_handoff: int = 2
    instance_type: str = "auto"
    fargate_vcpu: Decimal = Decimal("0.25")
    fargate_memory: Decimal = Decimal("0.5")
    days: Decimal = Decimal(30)
    free_tier: bool = False
    dynamodb_writes: str = "transactional"
    item_overhead: int = 100
    batch_window: Decimal = Decimal("0.1")
    batch_max: int = 99
    processor_batch: int = 100
    processor_duration: Decimal = Decimal("0.1")
    processor_memory: int = 128
    ebs_gb: Decimal = Decimal(8)
    public_ipv4: bool = True
    egress_per_event: int = 0
    retention_days: Decimal | None = None

    def __post_init__(self) -> None:
        # Accept ints and strings for the Decimal fields so callers need not wrap every literal.
        for f in fields(self):
            value = getattr(self, f.name)
            if "Decimal" not in str(f.type) or value is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            try:
                number = value if isinstance(value, Decimal) else Decimal(str(value))
            except InvalidOperation as exc:
                raise CostError(f"{flag} is not a number: {value!r}", f.name) from exc
            if not number.is_finite():
                raise CostError(f"{flag} must be a finite number, got {value}", f.name)
            object.__setattr__(self, f.name, number)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise CostError(f"--{name.replace('_', '-')} {message}", name)


def validate(w: Workload, book: PriceBook) -> None:
    """Refuse impossible workloads with a message that names the input at fault."""
    if w.region not in book.data["regions"]:
        known = ", ".join(book.regions)
        raise CostError(f"unknown region '{w.region}' (--region); known: {known}", "region")
    for name in ("streams", "connections_per_function", "transitions_per_handoff"):
        _check(getattr(w, name) >= 1, name, f"must be at least 1, got {getattr(w, name)}")
    for name in ("events_per_second", "event_size", "overlap", "transitions_per_execution"):
        _check(getattr(w, name) >= 0, name, f"must be >= 0, got {getattr(w, name)}")
    for name in ("item_overhead", "egress_per_event", "ebs_gb", "lease_writes_per_handoff"):
        _check(getattr(w, name) >= 0, name, f"must be >= 0, got {getattr(w, name)}")
    for name in ("days", "handoff_interval", "batch_window", "processor_duration"):
        _check(getattr(w, name) > 0, name, f"must be > 0, got {getattr(w, name)}")
    _check(w.retention_days is None or w.retention_days > 0, "retention_days", "must be > 0")
    lo, hi = (
        book.number("limits", "lambda_min_memory_mb"),
        book.number("limits", "lambda_max_memory_mb"),
    )
    for name in ("lambda_memory", "processor_memory"):
        value = getattr(w, name)
        _check(lo <= value <= hi, name, f"must be {num(lo)}..{num(hi)} MB, got {value}")
    _check(w.arch in ARCHS, "arch", f"must be one of {', '.join(ARCHS)}, got '{w.arch}'")
    _check(
        w.dynamodb_writes in WRITE_MODES,
        "dynamodb_writes",
        f"must be one of {', '.join(WRITE_MODES)}, got '{w.dynamodb_writes}'",
    )
    timeout = book.number("limits", "lambda_max_timeout_s")
    _check(
        w.handoff_interval + w.overlap <= timeout,
        "handoff_interval",
        f"plus --overlap must fit one invocation (at most {num(timeout)} s), "
        f"got {num(w.handoff_interval)} + {num(w.overlap)} s",
    )
    history = w.cycles_per_execution * _history_per_cycle(w) + 50
    limit = book.number("limits", "stepfunctions_max_history")
    _check(
        w.cycles_per_execution >= 1 and history <= limit,
        "cycles_per_execution",
        f"must keep an execution's history under {num(limit)} events "
        f"(~{_history_per_cycle(w)} per cycle), got {w.cycles_per_execution}",
    )
    _check(1 <= w.batch_max <= 99, "batch_max", f"must be 1..99, got {w.batch_max}")
    streams_max = book.number("limits", "dynamodb_streams_batch_max")
    _check(
        1 <= w.processor_batch <= streams_max,
        "processor_batch",
        f"must be 1..{num(streams_max)}, got {w.processor_batch}",
    )
    shape = FARGATE_SHAPES.get(w.fargate_vcpu)
    _check(
        shape is not None,
        "fargate_vcpu",
        f"must be one of {', '.join(num(v) for v in FARGATE_SHAPES)}, got {num(w.fargate_vcpu)}",
    )
    assert shape is not None
    _check(
        shape[0] <= w.fargate_memory <= shape[1],
        "fargate_memory",
        f"must be {num(shape[0])}..{num(shape[1])} GB for {num(w.fargate_vcpu)} vCPU",
    )
    if w.instance_type != "auto":
        book.instance(w.instance_type)
        try:
            book.price(w.region, "ec2", "hourly", w.instance_type)
        except UnknownPrice as exc:
            raise CostError(f"--instance-type {w.instance_type}: {exc}", "instance_type") from exc


def _history_per_cycle(w: Workload) -> int:
    """Step Functions history events per loop cycle: ~2 per state entered, 3 more per Task."""
    return 2 * w.transitions_per_handoff + 4


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class LineItem:
    """quantity x unit_price; ``meter`` groups usage that one free-tier allowance covers."""

    category: str
    label: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    meter: str = ""
    service: str = ""

    @property
    def cost(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class OptionCost:
    """One option's line items, or the reason it could not be priced (``error``)."""

    key: str
    name: str
    items: tuple[LineItem, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((i.cost for i in self.items), Decimal(0))


@dataclass(frozen=True)
class Comparison:
    workload: Workload
    options: tuple[OptionCost, ...]

    @property
    def cheapest(self) -> list[str]:
        """Keys of the priced options with the lowest total (several on a tie)."""
        priced = [o for o in self.options if o.error is None]
        if not priced:
            return []
        low = min(o.total for o in priced)
        return [o.key for o in priced if o.total == low]

    def option(self, key: str) -> OptionCost:
        return next(o for o in self.options if o.key == key)


class _Unpriceable(Exception):
    """An option that cannot carry the workload (too fast for one function, item too big)."""


@dataclass(frozen=True)
class _Ctx:
    """One workload against one price book: derived figures and priced line items."""

    w: Workload
    book: PriceBook

    def item(
        self,
        category: str,
        label: str,
        quantity: Decimal | int,
        unit: str,
        price: tuple[str, str] | tuple[str, str, str],
        *,
        per: int = 1,
        meter: str = "",
    ) -> LineItem:
        """A line item at the list price ``(service, key[, variant])`` / ``per``.

        A zero quantity needs no price, so an unknown price there is no reason to refuse.
        """
        quantity = Decimal(quantity)
        unit_price = Decimal(0)
        if quantity:
            unit_price = self.book.price(self.w.region, *price) / per
        return LineItem(category, label, quantity, unit, unit_price, meter, price[0])

    def n(self, table: str, key: str) -> Decimal:
        return self.book.number(table, key)

    @property
    def seconds(self) -> Decimal:
        return self.w.days * 86400

    @property
    def hours(self) -> Decimal:
        return self.w.days * 24

    @property
    def months(self) -> Decimal:
        return self.w.days / self.n("meta", "month_days")

    @property
    def events(self) -> Decimal:
        return self.w.events_per_second * self.seconds

    @property
    def write_mult(self) -> int:
        return 2 if self.w.dynamodb_writes == "transactional" else 1

    def avg_stored(self, item_bytes: Decimal) -> Decimal:
        """Mean bytes held over the period: growing from empty, capped by retention."""
        t = self.seconds
        rate = self.w.events_per_second * item_bytes
        if self.w.retention_days is None or self.w.retention_days * 86400 >= t:
            return rate * t / 2
        r = self.w.retention_days * 86400
        return rate * (r - r * r / (2 * t))

    def max_stored(self, item_bytes: Decimal) -> Decimal:
        keep = self.seconds
        if self.w.retention_days is not None:
            keep = min(keep, self.w.retention_days * 86400)
        return self.w.events_per_second * item_bytes * keep


# --------------------------------------------------------------------------------------------
# Line items shared by several options

Items = list[LineItem]
WRITE = ("dynamodb", "write_per_million")
LAMBDA_REQUESTS = ("lambda", "requests_per_million")


def _dynamodb(c: _Ctx) -> Items:
    """Event writes, checkpoint writes (one per store transaction) and storage in DynamoDB."""
    w = c.w
    item = Decimal(w.event_size + w.item_overhead)
    limit = c.n("limits", "dynamodb_max_item_bytes")
    if item > limit:
        raise _Unpriceable(
            f"an item of {num(item)} B (--event-size + --item-overhead) exceeds DynamoDB's "
            f"{num(limit)} B item limit"
        )
    units = ceil(item / c.n("limits", "dynamodb_write_unit_bytes")) * c.write_mult
    rate = w.events_per_second / w.streams
    tx_rate = min(rate, max(1 / w.batch_window, rate / w.batch_max)) if rate else Decimal(0)
    tx = tx_rate * w.streams * c.seconds
    stored = item + c.n("limits", "dynamodb_storage_overhead_bytes")
    mean_gb = c.avg_stored(stored) / GIB
    return [
        c.item(
            "store writes",
            f"event writes: {num(c.events)} x {units} WRU ({num(item)} B, {w.dynamodb_writes})",
            c.events * units,
            "WRU",
            WRITE,
            per=1_000_000,
        ),
        c.item(
            "store writes",
            f"checkpoint writes: {num(tx)} store transactions x {c.write_mult} WRU",
            tx * c.write_mult,
            "WRU",
            WRITE,
            per=1_000_000,
        ),
        c.item(
            "storage",
            f"DynamoDB: mean {_short(mean_gb)} GB held ({num(stored)} B/item)",
            mean_gb * c.months,
            "GB-month",
            ("dynamodb", "storage_gb_month"),
            meter="dynamodb_storage",
        ),
    ]


def _processor(c: _Ctx) -> Items:
    """The event processor: a Lambda fed by DynamoDB Streams in batches (stream reads are free)."""
    w = c.w
    batches = c.events / w.processor_batch
    run = f"{num(w.processor_duration)} s at {w.processor_memory} MB {w.arch}"
    return [
        c.item(
            "processing",
            f"processor Lambda: {num(batches)} batches of {w.processor_batch} x {run}",
            batches * w.processor_duration * w.processor_memory / 1024,
            "GB-s",
            ("lambda", "gb_second", w.arch),
            meter="lambda_gb_s",
        ),
        c.item(
            "processing",
            "processor Lambda requests",
            batches,
            "requests",
            LAMBDA_REQUESTS,
            per=1_000_000,
            meter="lambda_requests",
        ),
    ]


def _egress(c: _Ctx) -> Items:
    gb = c.events * c.w.egress_per_event / GIB
    return [c.item("network", "data transfer out", gb, "GB", ("transfer", "out_per_gb"))]


def _ipv4(c: _Ctx, count: int) -> Items:
    if not c.w.public_ipv4:
        return []
    label = f"public IPv4: {count} address(es) to reach the provider"
    return [c.item("network", label, count * c.hours, "address-hours", ("ipv4", "public_hourly"))]


FREE = (  # meter, allowance key, label, unit of the line item, unit of the allowance
    ("lambda_gb_s", "lambda_gb_seconds", "Lambda", "GB-s", "GB-s"),
    ("lambda_requests", "lambda_requests", "Lambda", "requests", "requests"),
    (
        "sfn_transitions",
        "stepfunctions_transitions",
        "Step Functions",
        "transitions",
        "transitions",
    ),
    ("dynamodb_storage", "dynamodb_storage_gb", "DynamoDB storage", "GB-month", "GB"),
    ("transfer_out", "transfer_out_gb", "data transfer out", "GB", "GB"),
)


def _free_tier(c: _Ctx, items: Items) -> Items:
    """Credits for the always-free allowances, prorated by days / 30, applied once per option."""
    if not c.w.free_tier:
        return []
    credits = []
    for meter, key, label, unit, per_month in FREE:
        used = [i for i in items if i.meter == meter and i.quantity]
        total = sum((i.quantity for i in used), Decimal(0))
        if not total:
            continue
        allowance = c.n("free_tier", key) * c.months
        text = f"{label}: {num(c.n('free_tier', key))} {per_month} a month free"
        price = used[0].unit_price
        credits.append(LineItem("free tier", text, -min(total, allowance), unit, price))
    return credits


def _finish(c: _Ctx, key: str, items: Items, notes: list[str]) -> OptionCost:
    items = [i for i in items if i.quantity]
    uncertain = sorted({i.service for i in items if c.book.uncertain(c.w.region, i.service)})
    notes += [f"{c.w.region} {s} prices are marked uncertain in prices.toml" for s in uncertain]
    return OptionCost(key, OPTIONS[key], (*items, *_free_tier(c, items)), tuple(notes))


# --------------------------------------------------------------------------------------------
# The options


def _lambda_memory(c: _Ctx, conns: int) -> tuple[int, list[str]]:
    """The function's memory: the user's, raised to the CPU and memory its connections need."""
    w = c.w
    rate = w.events_per_second / w.streams * conns
    per_vcpu = c.n("capacity", "capture_events_per_vcpu_second")
    need = max(
        ceil(rate / per_vcpu * c.n("limits", "lambda_mb_per_vcpu")),
        ceil(c.n("capacity", "process_mib") + c.n("capacity", "stream_mib") * conns),
    )
    memory = max(w.lambda_memory, need)
    if memory > c.n("limits", "lambda_max_memory_mb"):
        fix = "lower --connections-per-function"
        if conns == 1:
            fix = "one stream cannot be split across functions"
        raise _Unpriceable(
            f"one function would need {num(memory)} MB, more than Lambda's maximum, to "
            f"carry {num(rate)} events/s (placeholder capacity); {fix}"
        )
    if memory == w.lambda_memory:
        return memory, []
    return memory, [
        f"Lambda memory raised from {w.lambda_memory} to {memory} MB for {num(rate)} "
        f"events/s and {conns} connection(s) per function (placeholder capacity)"
    ]


def _lambda(c: _Ctx, with_sfn: bool) -> OptionCost:
    """Options 1 and 2: each function holds connections for one invocation, then hands over."""
    w = c.w
    conns = min(w.connections_per_function, w.streams)
    chains = ceil(Decimal(w.streams) / conns)
    memory, notes = _lambda_memory(c, conns)
    cycles = ceil(c.seconds / w.handoff_interval)
    handoffs = chains * cycles
    billed = chains * (c.seconds + cycles * w.overlap)
    items = [
        c.item(
            "compute",
            f"connection functions: {chains} x {memory} MB {w.arch}, {num(billed)} s billed "
            f"({num(w.overlap)} s overlap per handoff)",
            billed * memory / 1024,
            "GB-s",
            ("lambda", "gb_second", w.arch),
            meter="lambda_gb_s",
        ),
        c.item(
            "requests",
            f"{num(handoffs)} invocations: one per {num(w.handoff_interval)} s per function",
            handoffs,
            "requests",
            LAMBDA_REQUESTS,
            per=1_000_000,
            meter="lambda_requests",
        ),
    ]
    if with_sfn:
        executions = ceil(Decimal(cycles) / w.cycles_per_execution)
        per_chain = cycles * w.transitions_per_handoff + executions * w.transitions_per_execution
        items.append(
            c.item(
                "orchestration",
                f"state transitions: {chains} x ({num(cycles)} cycles x "
                f"{w.transitions_per_handoff} + {executions} executions x "
                f"{w.transitions_per_execution})",
                chains * per_chain,
                "transitions",
                ("stepfunctions", "standard_per_1000_transitions"),
                per=1000,
                meter="sfn_transitions",
            )
        )
    lease = f"handoff lease writes: {w.lease_writes_per_handoff} per handoff"
    lease_units = handoffs * w.lease_writes_per_handoff * c.write_mult
    read = "checkpoint read at each invocation start"
    items += [
        c.item("store writes", lease, lease_units, "WRU", WRITE, per=1_000_000),
        c.item("store reads", read, handoffs, "RRU", ("dynamodb", "read_per_million"), per=10**6),
    ]
    items += _dynamodb(c) + _processor(c) + _egress(c)
    return _finish(c, "lambda_sfn" if with_sfn else "lambda", items, notes)


def _fit(c: _Ctx, eps_cap: Decimal, streams_cap: Decimal, what: str) -> int:
    """How many servers/tasks the rate and the connection count need (at least one)."""
    if streams_cap < 1 or eps_cap <= 0:
        raise _Unpriceable(f"{what} has no room for a longline process (placeholder capacity)")
    by_rate = ceil(c.w.events_per_second / eps_cap)
    by_streams = ceil(Decimal(c.w.streams) / streams_cap.to_integral_value(ROUND_FLOOR))
    return max(1, by_rate, by_streams)


def _server(c: _Ctx, itype: str, all_processing: bool) -> OptionCost:
    """Options 3 and 4 on EC2: the instance holds every connection; 4 also stores and processes."""
    w = c.w
    shape = c.book.instance(itype)
    rate_key = "all_events_per_vcpu_second" if all_processing else "capture_events_per_vcpu_second"
    eps_cap = shape["vcpus"] * shape["baseline"] * c.n("capacity", rate_key)
    free_mib = (
        shape["memory_gib"] * 1024 - c.n("capacity", "os_mib") - c.n("capacity", "process_mib")
    )
    count = _fit(c, eps_cap, free_mib / c.n("capacity", "stream_mib"), itype)
    label = f"{count} x {itype} (placeholder capacity {num(eps_cap)} events/s each)"
    items = [c.item("compute", label, count * c.hours, "instance-hours", ("ec2", "hourly", itype))]
    volume = count * w.ebs_gb
    label = f"EBS gp3 root volume: {count} x {num(w.ebs_gb)} GB"
    if all_processing:
        data_gb = ceil(c.max_stored(Decimal(w.event_size + w.item_overhead)) / GIB)
        volume += data_gb
        label += f" + {data_gb} GB for the events kept" if data_gb else ""
    items.append(c.item("storage", label, volume * c.months, "GB-month", ("ebs", "gp3_gb_month")))
    items += _ipv4(c, count)
    if not all_processing:
        items += _dynamodb(c) + _processor(c)
    items += _egress(c)
    return _finish(c, "ec2_all" if all_processing else "ec2_hybrid", items, [])


def _servers(c: _Ctx, all_processing: bool) -> OptionCost:
    """Price the chosen instance type, or with ``auto`` the cheapest one that is priced."""
    if c.w.instance_type != "auto":
        return _server(c, c.w.instance_type, all_processing)
    best: OptionCost | None = None
    chosen = ""
    for itype in c.book.instance_types:
        try:
            option = _server(c, itype, all_processing)
        except (UnknownPrice, _Unpriceable):
            continue
        if best is None or option.total < best.total:
            best, chosen = option, itype
    if best is None:
        raise _Unpriceable(f"no instance type is priced for {c.w.region}")
    note = f"--instance-type auto chose {chosen}, the cheapest that fits"
    return replace(best, notes=(note, *best.notes))


def _fargate(c: _Ctx) -> OptionCost:
    """Option 3 on Fargate: tasks hold the connections; no burst credits, no root volume."""
    w = c.w
    eps_cap = w.fargate_vcpu * c.n("capacity", "capture_events_per_vcpu_second")
    free_mib = w.fargate_memory * 1024 - c.n("capacity", "process_mib")
    tasks = _fit(c, eps_cap, free_mib / c.n("capacity", "stream_mib"), "the Fargate task")
    shape = f"{tasks} task(s) of {num(w.fargate_vcpu)} vCPU / {num(w.fargate_memory)} GB {w.arch}"
    items = [
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
    items += _ipv4(c, tasks) + _dynamodb(c) + _processor(c) + _egress(c)
    return _finish(c, "fargate_hybrid", items, [])


BUILDERS: dict[str, Callable[[_Ctx], OptionCost]] = {
    "lambda": lambda c: _lambda(c, with_sfn=False),
    "lambda_sfn": lambda c: _lambda(c, with_sfn=True),
    "ec2_hybrid": lambda c: _servers(c, all_processing=False),
    "fargate_hybrid": _fargate,
    "ec2_all": lambda c: _servers(c, all_processing=True),
}


def compare(w: Workload, book: PriceBook) -> Comparison:
    """Price every option for ``w``; an option needing an unknown price carries the reason."""
    validate(w, book)
    options = []
    for key, build in BUILDERS.items():
        try:
            options.append(build(_Ctx(w, book)))
        except (UnknownPrice, _Unpriceable) as exc:
            options.append(OptionCost(key, OPTIONS[key], error=str(exc)))
    return Comparison(w, tuple(options))


# --------------------------------------------------------------------------------------------
# Sweeps and crossovers (what the plot and the "in words" summary are made of)

AXES = ("events_per_second", "streams")
GRID_DENSITY = 20


def axis_grid(axis: str) -> list[Decimal]:
    """Log-spaced points, 20 a decade: 0.01..100 000 events/s or 1..10 000 streams.

    Events/s start at 0.01, not 0: below that, 1-GB volume steps make meaningless crossovers.
    The density decides the narrowest window of cheapness the crossovers can see (~12 %).
    """
    if axis == "events_per_second":
        return [Decimal(10) ** (Decimal(k) / GRID_DENSITY) for k in range(-40, 101)]
    points = {ceil(Decimal(10) ** (Decimal(k) / GRID_DENSITY)) for k in range(81)}
    return [Decimal(p) for p in sorted(points)]


def _at(w: Workload, axis: str, value: Decimal) -> Workload:
    if axis == "streams":
        return replace(w, streams=int(value))
    return replace(w, events_per_second=value)


def sweep(
    w: Workload, book: PriceBook, axis: str, values: Sequence[Decimal]
) -> dict[str, list[Decimal | None]]:
    """Each option's total along ``axis`` (None where it cannot be priced)."""
    out: dict[str, list[Decimal | None]] = {k: [] for k in OPTIONS}
    for value in values:
        for option in compare(_at(w, axis, value), book).options:
            out[option.key].append(None if option.error else option.total)
    return out


@dataclass(frozen=True)
class Crossover:
    """From ``at`` on along ``axis``, ``after`` is cheapest, not ``before`` (ties: several)."""

    axis: str
    at: Decimal
    before: tuple[str, ...]
    after: tuple[str, ...]


def _cheapest(w: Workload, book: PriceBook) -> tuple[str, ...]:
    return tuple(compare(w, book).cheapest)


def crossovers(w: Workload, book: PriceBook, axis: str) -> list[Crossover]:
    """Where the cheapest option changes along ``axis``: bisection between grid points.

    A change between two neighbouring grid points is located to within 1 stream, or to a
    relative 1e-9 in events/s; two changes between the same neighbours would show as one.
    """
    grid = axis_grid(axis)
    found: list[Crossover] = []
    winners = [_cheapest(_at(w, axis, v), book) for v in grid]
    for lo, hi, a, b in zip(grid, grid[1:], winners, winners[1:], strict=False):
        if a == b or not a or not b:
            continue
        for _ in range(40):
            if axis == "streams" and hi - lo <= 1:
                break
            mid = (lo + hi) / 2 if axis == "streams" else (lo * hi).sqrt()
            mid = mid.to_integral_value(ROUND_FLOOR) if axis == "streams" else mid
            if _cheapest(_at(w, axis, mid), book) == a:
                lo = mid
            else:
                hi = mid
        found.append(Crossover(axis, hi, a, _cheapest(_at(w, axis, hi), book) or b))
    return found


def _names(keys: tuple[str, ...], singular: str, plural: str) -> str:
    if len(keys) == 1:
        return f"{OPTIONS[keys[0]]} {singular}"
    return " and ".join(OPTIONS[k] for k in keys) + f" (tied) {plural}"


def in_words(w: Workload, book: PriceBook, axis: str) -> tuple[list[Crossover], str]:
    """The crossovers along ``axis`` and one sentence a user can act on.

    Along events/s the number of streams is held; along streams the total events/s is held.
    """
    unit = "events/s" if axis == "events_per_second" else "streams"
    found = crossovers(w, book, axis)
    grid = axis_grid(axis)
    start = _cheapest(_at(w, axis, grid[0]), book)
    if not start:
        return found, f"No option can be priced along {unit}."
    held = (
        f"{num(w.streams)} stream(s)"
        if axis == "events_per_second"
        else f"{num(w.events_per_second)} events/s in total"
    )
    text = f"With {held}, {_names(start, 'is', 'are')} the cheapest from {num(grid[0])} {unit}"
    if not found:
        return found, f"{text} to {num(grid[-1])} {unit}."
    for x in found:
        at = x.at if axis == "streams" else Decimal(f"{x.at:.3g}")
        text += f"; at {num(at)} {unit} {_names(x.after, 'takes', 'take')} over"
    return found, text + "."


# --------------------------------------------------------------------------------------------
# The seed's table, figure by figure

SEED_HANDOFFS_TEXT = "one handoff every 15 minutes"


def seed_workload() -> Workload:
    """The seed's scenario: one connection, no events (its "min"), 128 MB x86 Lambda, t4g.nano,
    ap-southeast-2, 30 days, 15-minute handoffs without overlap, no free tier."""
    return Workload(
        region="ap-southeast-2",
        streams=1,
        events_per_second=Decimal(0),
        lambda_memory=128,
        arch="x86_64",
        handoff_interval=Decimal(900),
        overlap=Decimal(0),
        instance_type="t4g.nano",
        days=Decimal(30),
        free_tier=False,
    )


@dataclass(frozen=True)
class SeedFigure:
    """One figure of the seed next to ours; ``verdict`` is same, rounded, differs or no figure."""

    figure: str
    seed: Decimal | None
    ours: Decimal
    verdict: str
    why: str
    unit: str = "$"


def _verdict(seed: Decimal | None, ours: Decimal) -> str:
    if seed is None:
        return "no figure"
    if seed == ours:
        return "same"
    if ours.quantize(Decimal(1).scaleb(seed.as_tuple().exponent)) == seed:  # type: ignore[arg-type]
        return "rounded"
    return "differs"


def _item(option: OptionCost, category: str) -> LineItem:
    return next(i for i in option.items if i.category == category)


def seed_figures(book: PriceBook, w: Workload | None = None) -> list[SeedFigure]:
    """Each figure the seed prints, ours for the same scenario, and the arithmetic between them."""
    w = w or seed_workload()
    if w.instance_type == "auto":  # the seed's figure is for a t4g.nano
        w = replace(w, instance_type="t4g.nano")
    cmp = compare(w, book)
    figures: list[SeedFigure] = []

    def add(figure: str, seed: str | None, ours: Decimal, why: str, unit: str = "$") -> None:
        value = None if seed is None else Decimal(seed)
        figures.append(SeedFigure(figure, value, ours, _verdict(value, ours), why, unit))

    gbs = book.price(w.region, "lambda", "gb_second", w.arch)
    gb = Decimal(w.lambda_memory) / 1024
    add(
        f"Lambda $/ms ({w.lambda_memory} MB {w.arch})",
        "0.0000000021",
        gbs * gb / 1000,
        f"{usd(gbs)}/GB-s x {num(gb)} GB / 1000 = {usd(gbs * gb / 1000)}/ms; AWS's per-ms "
        "table shows it rounded to 2 significant figures",
    )
    one, two = cmp.option("lambda"), cmp.option("lambda_sfn")
    if one.error is None:
        compute, requests = _item(one, "compute"), _item(one, "requests")
        ms = w.days * 86400 * 1000
        add(
            f"Lambda, {num(w.days)} days (duration)",
            "5.4432",
            compute.cost,
            f"seed: $0.0000000021/ms x {num(ms)} ms = {usd(Decimal('0.0000000021') * ms)}, with "
            f"the rounded per-ms price; billed per GB-second: {num(compute.quantity)} GB-s x "
            f"{usd(compute.unit_price)} = {usd(compute.cost)}; plus {num(requests.quantity)} "
            f"invocations x {usd(requests.unit_price)} = {usd(requests.cost)}; option 1 in all: "
            f"{usd(one.total)}",
        )
    sfn = book.price(w.region, "stepfunctions", "standard_per_1000_transitions")
    free = book.number("free_tier", "stepfunctions_transitions")
    add(
        "Step Functions $ per 1,000 transitions",
        "0.025",
        sfn,
        "a flat Standard-workflow price for every transition, not only the first 1,000 "
        f"(the free tier, when it applies, covers {num(free)} a month)",
    )
    add("Step Functions $ per transition", "0.000025", sfn / 1000, f"{usd(sfn)} / 1,000")
    if two.error is None:
        orch = _item(two, "orchestration")
        cycles = ceil(w.days * 86400 / w.handoff_interval)
        floor = Decimal(cycles) * sfn / 1000
        add(
            f"state transitions in {num(w.days)} days",
            "2880",
            orch.quantity,
            f"2,880 = 30 d x 24 h x 4: {SEED_HANDOFFS_TEXT}, which is the floor only if a handoff "
            f"takes a single transition; longline's loop takes {w.transitions_per_handoff} per "
            f"cycle (Invoke, Count, Continue?) and {w.transitions_per_execution} per "
            f"continue-as-new execution: {orch.label.split(': ', 1)[1]} = {num(orch.quantity)}",
            "transitions",
        )
        add(
            f"Step Functions, {num(w.days)} days",
            "0.72",
            orch.cost,
            f"2,880 x {usd(sfn / 1000)} = {usd(Decimal(2880) * sfn / 1000)}, not $0.72 (a factor "
            f"of 10); {num(Decimal(cycles))} handoffs at one transition each = {usd(floor)}; "
            f"longline's {num(orch.quantity)} transitions = {usd(orch.cost)}",
        )
        add(
            f"Lambda + Step Functions, {num(w.days)} days",
            "6.1632",
            two.total,
            f"seed: $5.4432 + $0.72; ours: Lambda {usd(_item(two, 'compute').cost)} + "
            f"transitions {usd(orch.cost)} + the rest of option 2's line items = {usd(two.total)}",
        )
    itype = w.instance_type
    hourly = book.price(w.region, "ec2", "hourly", itype)
    try:
        us = book.price("us-east-1", "ec2", "hourly", itype)
        east = f"; us-east-1 lists {usd(us)}"
        if us == Decimal("0.0042") != hourly:
            east += ": the seed's $0.0042 is the us-east-1 price"
    except (UnknownPrice, KeyError):
        east = ""
    mark = " (marked uncertain in prices.toml)" if book.uncertain(w.region, "ec2") else ""
    add(
        f"EC2 {itype} $/hour",
        "0.0042",
        hourly,
        f"{w.region} lists {usd(hourly)}{mark}{east}",
    )
    three = cmp.option("ec2_hybrid")
    if three.error is None:
        hours = w.days * 24
        rest = [i for i in three.items if i.category in ("storage", "network")]
        extras = "; ".join(
            f"{i.label}: {num(i.quantity)} x {usd(i.unit_price)} = {usd(i.cost)}" for i in rest
        )
        add(
            f"EC2 {itype}, {num(w.days)} days (instance)",
            "3.024",
            _item(three, "compute").cost,
            f"seed: $0.0042 x {num(hours)} h = {usd(Decimal('0.0042') * hours)}; at {usd(hourly)}: "
            f"{usd(hourly * hours)}; the seed leaves out what the instance needs to work — "
            f"{extras} — option 3 in all: {usd(three.total)}",
        )
    four = cmp.option("ec2_all")
    if four.error is None:
        add(
            f"EC2 for all processing, {num(w.days)} days",
            None,
            four.total,
            "the seed gives no figure"
            + ("; without events it costs what option 3 does" if not w.events_per_second else "")
            + "; it grows with events/s by instance size, not per write",
        )
    return figures
