"""The DynamoDB "schema": the tables a ``dynamodb://PREFIX`` store uses, and their creation.

DynamoDB has no migrations in the SQL sense: a table's key schema is fixed at creation and every
other attribute is free. So the schema is this list of tables; adding one later only means adding
an entry. (Leases live as attributes of the stream's item in ``streams``, so that an append can
check the fencing epoch in the same condition that guards ``last_seq``, at no extra cost.)
Tables are created on demand (PAY_PER_REQUEST), and the events table streams NEW_IMAGE records
so that a store write can trigger processing (DynamoDB Streams -> Lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TABLES", "TableSpec", "create_request"]


@dataclass(slots=True, frozen=True)
class TableSpec:
    """One table: its suffix after the prefix, its key, and whether it streams its writes."""

    suffix: str
    hash_key: tuple[str, str]  # (attribute, type: S | N | B)
    range_key: tuple[str, str] | None = None
    stream: bool = False
    purpose: str = ""


TABLES: tuple[TableSpec, ...] = (
    TableSpec("events", ("stream", "S"), ("seq", "N"), True, "events by (stream, seq)"),
    TableSpec("keys", ("stream", "S"), ("k", "S"), False, "(stream, key) -> seq: idempotency"),
    TableSpec("streams", ("stream", "S"), None, False, "last_seq, checkpoint, status, lease"),
    TableSpec(
        "quarantine", ("stream", "S"), ("id", "N"), False, "quarantined items; id 0 = counter"
    ),
    TableSpec("delivery", ("processor", "S"), ("stream", "S"), False, "delivery cursors"),
    TableSpec("deadletters", ("processor", "S"), ("ref", "S"), False, "dead letters by event"),
)


def create_request(prefix: str, spec: TableSpec) -> dict[str, Any]:
    """The ``CreateTable`` arguments of ``spec`` under ``prefix`` (on-demand billing)."""
    keys = [spec.hash_key] + ([spec.range_key] if spec.range_key else [])
    request: dict[str, Any] = {
        "TableName": f"{prefix}_{spec.suffix}",
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, t in keys],
        "KeySchema": [
            {"AttributeName": a, "KeyType": kind}
            for (a, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)
        ],
    }
    if spec.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    return request
