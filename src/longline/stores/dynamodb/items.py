"""Pure helpers of the DynamoDB store: item encoding, request shapes, sizes and write units.

Kept apart from :mod:`longline.stores.dynamodb.store` so the I/O module reads as the algorithm, and
so these rules (what an item looks like, what it costs) can be tested without a server.
Every expression names its attributes through ``#placeholders``: ``key``, ``cursor``,
``stream`` and ``status`` are DynamoDB reserved words.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from longline.core.model import (
    Event,
    Lease,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)
from longline.stores.base import status_json

ITEM_LIMIT = 400 * 1024  # DynamoDB's maximum item size
RAW_KEEP = 64 * 1024  # what a quarantined oversized event keeps of its body
PART_ITEMS = 100  # TransactWriteItems: at most 100 actions ...
PART_BYTES = 4_000_000  # ... and 4 MB; we stay a little under
_NUMBER = 21  # bytes a number may take in an item (DynamoDB: up to 21)
_KEY_SK_MAX = 1000  # sort keys may be up to 1024 bytes; longer event keys are hashed

MAX_CONFLICTS = 100  # re-reads before a conditional write gives up (heavy same-stream races)

Item = dict[str, Any]
Tables = dict[str, str]


class Cancelled(Exception):
    """A conditional write or ``TransactWriteItems`` failed its condition (not a throttle)."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__(", ".join(codes))
        self.codes = codes


def str_attr(value: str) -> dict[str, str]:
    return {"S": value}


def num_attr(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def key_sk(key: str) -> str:
    """The sort key of an event key: never empty, never over DynamoDB's 1024-byte limit."""
    if len(key.encode()) > _KEY_SK_MAX:
        return "#" + hashlib.sha256(key.encode()).hexdigest()
    return "=" + key


def event_size(stream: str, ev: Event) -> int:
    """The size DynamoDB counts for an event's item (names plus values, UTF-8)."""
    size = 6 + len(stream.encode()) + 3 + _NUMBER + 3 + len(ev.key.encode())
    size += 7 + len(ev.payload.encode()) + 11 + _NUMBER
    if ev.cursor is not None:
        size += 6 + len(ev.cursor.encode())
    if ev.event is not None:
        size += 5 + len(ev.event.encode())
    return size


def _key_item_size(stream: str, ev: Event) -> int:
    return 6 + len(stream.encode()) + 1 + len(key_sk(ev.key).encode()) + 3 + len(ev.key) + 24


def take_part(stream: str, pending: Sequence[tuple[Event, int]]) -> list[tuple[Event, int]]:
    """The longest prefix of ``pending`` one transaction can hold (two items per event, plus
    the stream's item), under 100 actions and 4 MB. Never empty when ``pending`` is not."""
    part: list[tuple[Event, int]] = []
    total = 1024
    for ev, size in pending:
        total += size + _key_item_size(stream, ev) + 256
        if part and (2 * len(part) + 3 > PART_ITEMS or total > PART_BYTES):
            break
        part.append((ev, size))
    return part


def oversized(ev: Event, size: int) -> Quarantined:
    """The quarantine entry of an event too large for one item."""
    raw = ev.payload.encode()[:RAW_KEEP]
    reason = (
        f"event {ev.key!r} too large for a DynamoDB item: {size} bytes > {ITEM_LIMIT}"
        f" (first {len(raw)} bytes kept)"
    )
    return Quarantined(reason=reason, raw=raw, received_at=ev.received_at)


# The stream item's attributes holding its life-long totals (``Store.totals``).
TOTALS = {
    "events": "total_events",
    "duplicates": "total_duplicates",
    "quarantined": "total_quarantined",
    "reconnects": "total_reconnects",
}


def add_totals(update: Item, counts: Mapping[str, int]) -> None:
    """Add ``ADD`` clauses for the non-zero ``counts`` (keys of ``TOTALS``) to an update."""
    adds = []
    for n, (name, value) in enumerate(counts.items()):
        if value:
            update["ExpressionAttributeNames"][f"#t{n}"] = TOTALS[name]
            update["ExpressionAttributeValues"][f":t{n}"] = num_attr(value)
            adds.append(f"#t{n} :t{n}")
    if adds:
        old = update.get("UpdateExpression", "")
        update["UpdateExpression"] = f"{old} ADD {', '.join(adds)}".strip()


def totals_update(tables: Tables, stream: str, counts: Mapping[str, int]) -> Item:
    """UpdateItem arguments adding ``counts`` to a stream's totals (nothing else)."""
    update: Item = {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(stream)},
        "ExpressionAttributeNames": {},
        "ExpressionAttributeValues": {},
    }
    add_totals(update, counts)
    return update


def load_totals(item: Item) -> Totals:
    """The totals held in a stream's item (0 where never counted)."""
    got = {k: int(item[a]["N"]) if a in item else 0 for k, a in TOTALS.items()}
    return Totals(**got)


def append_items(
    tables: Tables,
    stream: str,
    base: int,
    events: Sequence[Event],
    cursor: str | None,
    now: float,
    totals: Mapping[str, int] | None = None,
    epoch: int | None = None,
) -> list[Item]:
    """The transaction of one part: event and key puts, and the stream's conditional update
    (which adds ``totals`` to the stream's counters)."""
    items: list[Item] = []
    for i, ev in enumerate(events, start=base + 1):
        item: Item = {
            "stream": str_attr(stream),
            "seq": num_attr(i),
            "key": str_attr(ev.key),
            "payload": str_attr(ev.payload),
            "received_at": num_attr(float(ev.received_at)),
        }
        if ev.cursor is not None:
            item["cursor"] = str_attr(ev.cursor)
        if ev.event is not None:
            item["event"] = str_attr(ev.event)
        if epoch is not None:
            item["epoch"] = num_attr(epoch)
        items.append(_put(tables["events"], item, "seq"))
        key = {
            "stream": str_attr(stream),
            "k": str_attr(key_sk(ev.key)),
            "key": str_attr(ev.key),
            "seq": num_attr(i),
        }
        items.append(_put(tables["keys"], key, "k"))
    names = {"#l": "last_seq", "#u": "updated_at"}
    values: dict[str, Any] = {
        ":b": num_attr(base),
        ":l": num_attr(base + len(events)),
        ":u": num_attr(now),
    }
    update = "SET #l = :l, #u = :u"
    if cursor is not None:
        names["#c"], values[":c"] = "cursor", str_attr(cursor)
        update += ", #c = :c"
    condition = "#l = :b" if base else "attribute_not_exists(#l) OR #l = :b"
    stream_update: Item = {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(stream)},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    add_totals(stream_update, totals or {})
    items.append({"Update": stream_update})
    return items


def _put(table: str, item: Item, unique: str) -> Item:
    return {
        "Put": {
            "TableName": table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#x)",
            "ExpressionAttributeNames": {"#x": unique},
        }
    }


def item_size(item: Item) -> int:
    """DynamoDB's size of an item: attribute names plus values."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        (kind, v), *_ = value.items()
        size += _NUMBER if kind == "N" else len(v) if kind == "B" else len(str(v).encode())
    return size


def _units(item: Item) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def transact_units(actions: Sequence[Item]) -> int:
    """Write request units of a transaction: 2 per KB of each item (updates counted as 1 KB)."""
    total = 0
    for action in actions:
        (kind, body), *_ = action.items()
        total += 2 * (_units(body["Item"]) if kind == "Put" else 1)
    return total


def batch_units(requests: Sequence[Item]) -> int:
    """Write request units of a BatchWriteItem: 1 per KB of each put, 1 per delete."""
    return sum(_units(r["PutRequest"]["Item"]) if "PutRequest" in r else 1 for r in requests)


def key_lookup(stream: str, keys: Sequence[str]) -> Item:
    """A BatchGetItem request for the key items of ``keys`` (strongly consistent)."""
    return {
        "Keys": [
            {"stream": str_attr(stream), "k": str_attr(key_sk(k))} for k in dict.fromkeys(keys)
        ],
        "ConsistentRead": True,
        "ProjectionExpression": "#k",
        "ExpressionAttributeNames": {"#k": "key"},
    }


def set_cursor(tables: Tables, stream: str, cursor: str) -> Item:
    """UpdateItem arguments saving only the checkpoint (no events were new)."""
    return {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(stream)},
        "UpdateExpression": "SET #c = :c",
        "ExpressionAttributeNames": {"#c": "cursor"},
        "ExpressionAttributeValues": {":c": str_attr(cursor)},
    }


def query_events(tables: Tables, stream: str, after: int, limit: int, start: Item | None) -> Item:
    """Query arguments for events of ``stream`` with ``seq > after``, in seq order."""
    args: Item = {
        "TableName": tables["events"],
        "KeyConditionExpression": "#s = :s AND #q > :a",
        "ExpressionAttributeNames": {"#s": "stream", "#q": "seq"},
        "ExpressionAttributeValues": {":s": str_attr(stream), ":a": num_attr(max(after, 0))},
        "Limit": limit,
        "ConsistentRead": True,
    }
    if start:
        args["ExclusiveStartKey"] = start
    return args


def stored_event(item: Item) -> StoredEvent:
    return StoredEvent(
        seq=int(item["seq"]["N"]),
        key=item["key"]["S"],
        cursor=item["cursor"]["S"] if "cursor" in item else None,
        received_at=float(item["received_at"]["N"]),
        payload=item["payload"]["S"],
        event=item["event"]["S"] if "event" in item else None,
        epoch=int(item["epoch"]["N"]) if "epoch" in item else None,
    )


def quarantine_parts(puts: list[Item]) -> list[list[Item]]:
    """Quarantine items in groups that fit one transaction beside the totals update (at most
    99 items and well under its 4 MB)."""
    parts: list[list[Item]] = [[]]
    size = 0
    for p in puts:
        n = len(p["raw"]["B"]) + len(p["reason"]["S"].encode()) + 200
        if len(parts[-1]) == 99 or (parts[-1] and size + n > 3_500_000):
            parts.append([])
            size = 0
        parts[-1].append(p)
        size += n
    return [p for p in parts if p]


def quarantine_item(stream: str, ident: int, q: Quarantined) -> Item:
    """A quarantine item; a body too large for one item keeps only its head."""
    raw, reason = bytes(q.raw), q.reason
    if len(raw) + len(reason.encode()) > ITEM_LIMIT - 1024:
        reason = f"{reason} (raw truncated from {len(raw)} bytes)"
        raw = raw[:RAW_KEEP]
    return {
        "stream": str_attr(stream),
        "id": num_attr(ident),
        "reason": str_attr(reason),
        "raw": {"B": raw},
        "received_at": num_attr(float(q.received_at)),
    }


def stored_quarantine(item: Item) -> StoredQuarantine:
    return StoredQuarantine(
        id=int(item["id"]["N"]),
        reason=item["reason"]["S"],
        raw=bytes(item["raw"]["B"]),
        received_at=float(item["received_at"]["N"]),
    )


def set_status(tables: Tables, stream: str, status: dict[str, Any], now: float) -> Item:
    """UpdateItem arguments saving a stream's status beside its checkpoint."""
    data = status_json(stream, status)
    return {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(stream)},
        "UpdateExpression": "SET #st = :st, #t = :t",
        "ExpressionAttributeNames": {"#st": "status", "#t": "status_at"},
        "ExpressionAttributeValues": {":st": str_attr(data), ":t": num_attr(now)},
    }


def load_status(item: Item) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(item["status"]["S"])
    return data


def lease(stream: str, item: Item | None) -> Lease | None:
    """The lease held in a stream's item, or None when never taken."""
    if not item or "lease_epoch" not in item:
        return None
    return Lease(
        stream=stream,
        owner=item["lease_owner"]["S"],
        epoch=int(item["lease_epoch"]["N"]),
        expires_at=float(item["lease_expires"]["N"]),
        live=bool(item.get("lease_live", {}).get("BOOL", False)),
    )


def fence(update: Item, epoch: int) -> None:
    """Add "no newer lease" to an update's condition (the checkpoint write of an epoch)."""
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
    names["#le"], values[":le"] = "lease_epoch", num_attr(epoch)
    fenced = "(attribute_not_exists(#le) OR #le <= :le)"
    old = update.get("ConditionExpression")
    update["ConditionExpression"] = f"({old}) AND {fenced}" if old else fenced
