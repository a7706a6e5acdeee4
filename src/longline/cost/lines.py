"""Line items several options share: the DynamoDB store, the processor, the network, free tier.

Options 1, 2, 3 and 3b write the same events to the same store and process them the same way;
pricing that once keeps the options' difference down to how they hold connections.
"""

from __future__ import annotations

from decimal import Decimal

from longline.cost.context import Ctx, Items, Unpriceable
from longline.cost.numbers import GIB, ceil, num, short
from longline.cost.result import OPTIONS, LineItem, OptionCost

__all__ = [
    "LAMBDA_REQUESTS",
    "WRITE",
    "dynamodb",
    "egress",
    "finish",
    "free_tier",
    "ipv4",
    "part_events",
    "processor",
    "store_bends",
    "store_parts",
]

WRITE = ("dynamodb", "write_per_million")
LAMBDA_REQUESTS = ("lambda", "requests_per_million")


def part_events(c: Ctx) -> int:
    """Events one transaction part holds: two items each (event, key) and the stream's item."""
    return int((c.n("limits", "dynamodb_transaction_max_actions") - 1) // 2)


def store_parts(c: Ctx) -> Decimal:
    """Transaction parts over the period; each writes the stream's item (last_seq, checkpoint).

    Per stream, one transaction per event while they arrive slower than the batch window, one
    per window, then full batches of ``batch_max``; the store splits each transaction into
    ``ceil(events in it / part_events)`` parts (docs/stores.md, "Cost").
    """
    w = c.w
    rate = w.events_per_second / w.streams
    if not rate:
        return Decimal(0)
    tx_rate = min(rate, max(1 / w.batch_window, rate / w.batch_max))
    # events per transaction; E x window / N is exact whenever it is a whole number
    per_window = w.events_per_second * w.batch_window / w.streams
    batch = max(Decimal(1), min(per_window, Decimal(w.batch_max)))
    return tx_rate * ceil(batch / part_events(c)) * w.streams * c.seconds


def store_bends(c: Ctx, top: int) -> list[Decimal]:
    """Stream counts (not whole) where ``store_parts`` bends or steps as streams are added.

    Batching sets in at ``E x window / batch_max`` and ``E x window`` streams, and a transaction
    needs ``k + 1`` parts, not ``k``, below ``E x window / (part_events x k)`` streams; between
    two of these the parts are a straight line in the number of streams. Should more steps than
    ``top`` lie in 1..``top``, every count up to ``top`` is returned.
    """
    w = c.w
    per_window = w.events_per_second * w.batch_window
    part = part_events(c)
    first = max(1, int(per_window / (part * (top + 1))))
    last = min(ceil(Decimal(w.batch_max) / part) - 1, int(per_window / part))
    if last - first >= top:
        return [Decimal(n) for n in range(1, top + 1)]
    steps = [per_window / (part * k) for k in range(first, last + 1)]
    return [per_window / w.batch_max, per_window, *steps]


def _units(c: Ctx, item: Decimal, what: str, flags: str) -> int:
    """WRU to write one item of ``item`` bytes; refuses an item DynamoDB cannot hold."""
    limit = c.n("limits", "dynamodb_max_item_bytes")
    if item > limit:
        raise Unpriceable(
            f"{what} of {num(item)} B ({flags}) exceeds DynamoDB's {num(limit)} B item limit"
        )
    return ceil(item / c.n("limits", "dynamodb_write_unit_bytes")) * c.write_mult


def dynamodb(c: Ctx) -> Items:
    """Event and key writes (two items per event), stream-item writes (one per transaction
    part) and storage in DynamoDB, as longline's DynamoDB store writes them."""
    w = c.w
    item = Decimal(w.event_size + w.item_overhead)
    units = _units(c, item, "an item", "--event-size + --item-overhead")
    key_item = Decimal(2 * w.key_size + w.item_overhead)  # the key as sort key and as itself
    key_units = _units(c, key_item, "a key item", "2 x --key-size + --item-overhead")
    parts = store_parts(c)
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
            f"key writes: {num(c.events)} x {key_units} WRU ({num(key_item)} B uniqueness item)",
            c.events * key_units,
            "WRU",
            WRITE,
            per=1_000_000,
        ),
        c.item(
            "store writes",
            f"stream-item writes: {num(parts)} transaction parts x {c.write_mult} WRU "
            f"(last_seq, checkpoint; at most {part_events(c)} events a part)",
            parts * c.write_mult,
            "WRU",
            WRITE,
            per=1_000_000,
        ),
        c.item(
            "storage",
            f"DynamoDB: mean {short(mean_gb)} GB held ({num(stored)} B/item)",
            mean_gb * c.months,
            "GB-month",
            ("dynamodb", "storage_gb_month"),
            meter="dynamodb_storage",
        ),
    ]


def processor(c: Ctx) -> Items:
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


def egress(c: Ctx) -> Items:
    """Bytes the processors send to the internet (webhooks); inbound is free."""
    gb = c.events * c.w.egress_per_event / GIB
    price = ("transfer", "out_per_gb")
    return [c.item("network", "data transfer out", gb, "GB", price, meter="transfer_out")]


def ipv4(c: Ctx, count: int) -> Items:
    """A public address per server or task: what it needs to reach the provider over IPv4."""
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


def free_tier(c: Ctx, items: Items) -> Items:
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


def finish(c: Ctx, key: str, items: Items, notes: list[str]) -> OptionCost:
    """Drop empty lines, warn about uncertain prices, add the free-tier credits."""
    items = [i for i in items if i.quantity]
    uncertain = sorted({i.service for i in items if c.book.uncertain(c.w.region, i.service)})
    notes = notes + [
        f"{c.w.region} {s} prices are marked uncertain in prices.toml" for s in uncertain
    ]
    return OptionCost(key, OPTIONS[key], (*items, *free_tier(c, items)), tuple(notes))
