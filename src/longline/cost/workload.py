"""What ``longline cost`` prices, and the checks that refuse an impossible workload.

Field names are the CLI flags (``event_size`` -> ``--event-size``), so every refusal can name the
flag to fix; the checks run before any option is priced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation

from longline.cost.numbers import num
from longline.cost.prices import CostError, PriceBook, UnknownPrice

__all__ = [
    "ARCHS",
    "FARGATE_SHAPES",
    "WRITE_MODES",
    "Workload",
    "history_per_cycle",
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


@dataclass(frozen=True)
class Workload:
    """What to price; field names are the CLI flags (``event_size`` -> ``--event-size``).

    Durations are seconds, sizes bytes, Lambda memory MB, Fargate memory GB. ``events_per_second``
    is the total over all streams. ``instance_type="auto"`` picks the cheapest shape that fits.
    ``key_size`` is the mean event key: the store writes a uniqueness item holding it per event.
    ``memory_per_stream``, ``process_memory`` (bytes) and ``cpu_per_event`` (seconds) size the
    servers and functions; ``None`` takes the price file's ``[capacity]`` placeholders.
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
    transitions_per_handoff: int = 4
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
    key_size: int = 40
    batch_window: Decimal = Decimal("0.1")
    batch_max: int = 99
    processor_batch: int = 100
    processor_duration: Decimal = Decimal("0.1")
    processor_memory: int = 128
    ebs_gb: Decimal = Decimal(8)
    public_ipv4: bool = True
    egress_per_event: int = 0
    retention_days: Decimal | None = None
    memory_per_stream: Decimal | None = None
    process_memory: Decimal | None = None
    cpu_per_event: Decimal | None = None

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


def history_per_cycle(w: Workload) -> int:
    """Step Functions history events per loop cycle: ~2 per state entered, 3 more per Task."""
    return 2 * w.transitions_per_handoff + 4


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
    _check(w.key_size >= 0, "key_size", f"must be >= 0, got {w.key_size}")
    for name in ("days", "handoff_interval", "batch_window", "processor_duration"):
        _check(getattr(w, name) > 0, name, f"must be > 0, got {getattr(w, name)}")
    _check(w.retention_days is None or w.retention_days > 0, "retention_days", "must be > 0")
    for name in ("memory_per_stream", "process_memory", "cpu_per_event"):
        value = getattr(w, name)
        _check(value is None or value > 0, name, f"must be > 0, got {value}")
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
    _check_lambda_limits(w, book)
    _check(w.batch_max >= 1, "batch_max", f"must be at least 1, got {w.batch_max}")
    streams_max = book.number("limits", "dynamodb_streams_batch_max")
    _check(
        1 <= w.processor_batch <= streams_max,
        "processor_batch",
        f"must be 1..{num(streams_max)}, got {w.processor_batch}",
    )
    _check_servers(w, book)


def _check_lambda_limits(w: Workload, book: PriceBook) -> None:
    """One invocation's length and one execution's history: Lambda's and SFN's hard limits."""
    timeout = book.number("limits", "lambda_max_timeout_s")
    _check(
        w.handoff_interval + w.overlap <= timeout,
        "handoff_interval",
        f"plus --overlap must fit one invocation (at most {num(timeout)} s), "
        f"got {num(w.handoff_interval)} + {num(w.overlap)} s",
    )
    history = w.cycles_per_execution * history_per_cycle(w) + 50
    limit = book.number("limits", "stepfunctions_max_history")
    _check(
        w.cycles_per_execution >= 1 and history <= limit,
        "cycles_per_execution",
        f"must keep an execution's history under {num(limit)} events "
        f"(~{history_per_cycle(w)} per cycle), got {w.cycles_per_execution}",
    )


def _check_servers(w: Workload, book: PriceBook) -> None:
    """A Fargate shape AWS offers, and an instance type the price file knows for the region."""
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
