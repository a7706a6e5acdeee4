"""Leases for ``DynamoDBStore``: one owner per stream, with an epoch that fences older owners.

A lease is a few attributes of the stream's item in ``streams``: the append's condition on
``last_seq`` can then also say "no newer epoch", which fences a superseded owner for free.
"""

from __future__ import annotations

import time
from typing import Any

from longline.core.model import Lease
from longline.stores.base import LeaseTable, StoreError
from longline.stores.dynamodb import items as di
from longline.stores.dynamodb.base import DynamoDBBase
from longline.stores.dynamodb.items import Item, Tables, num_attr, str_attr

__all__ = ["DynamoDBLeases"]


class DynamoDBLeases(DynamoDBBase, LeaseTable):
    """The :class:`~longline.stores.base.LeaseTable` of ``DynamoDBStore``."""

    async def get_lease(self, stream: str) -> Lease | None:
        """The stream's lease (attributes of its ``streams`` item), or None."""
        return di.lease(stream, await self._get("streams", {"stream": {"S": stream}}))

    async def leases(self) -> dict[str, Lease]:
        """Every stream's lease: a consistent scan of ``streams`` for the lease attributes."""
        items = await self._scan(
            "streams",
            ProjectionExpression="#s, lease_owner, lease_epoch, lease_expires, lease_live",
            ExpressionAttributeNames={"#s": "stream"},
        )
        found = {item["stream"]["S"]: di.lease(item["stream"]["S"], item) for item in items}
        return {name: lease for name, lease in found.items() if lease is not None}

    async def take_lease(self, stream: str, owner: str, ttl: float) -> Lease:
        """Take the lease unconditionally with the next epoch (see ``LeaseTable``)."""
        lease = await self._take(stream, owner, ttl, force=True)
        assert lease is not None
        return lease

    async def acquire_lease(self, stream: str, owner: str, ttl: float) -> Lease | None:
        """Take the lease only when it is free or expired (see ``LeaseTable``)."""
        return await self._take(stream, owner, ttl, force=False)

    async def _take(self, stream: str, owner: str, ttl: float, force: bool) -> Lease | None:
        for _ in range(di.MAX_CONFLICTS):
            old = await self.get_lease(stream)
            now = time.time()
            if not force and old is not None and old.expires_at > now:
                return None
            update = take_lease_update(
                self._t, stream, owner, old, now + ttl, None if force else now
            )
            try:
                out = await self._write("update_item", **update)
            except di.Cancelled:
                continue  # someone else took it meanwhile: look again
            return di.lease(stream, out["Attributes"])
        raise StoreError(f"DynamoDB lease of {stream!r}: too many conflicts")

    async def renew_lease(self, lease: Lease, ttl: float, live: bool = False) -> Lease:
        """Extend a current lease; return the lease in force (see ``LeaseTable``)."""
        expires = time.time() + ttl
        update = renew_lease_update(self._t, lease, expires, live)
        try:
            out = await self._write("update_item", **update)
        except di.Cancelled:
            return await self.get_lease(lease.stream) or lease
        renewed = di.lease(lease.stream, out["Attributes"])
        return renewed or lease


def take_lease_update(
    tables: Tables, stream: str, owner: str, old: Lease | None, expires: float, now: float | None
) -> Item:
    """UpdateItem arguments taking the lease with the next epoch, provided it is still at
    ``old``'s epoch and (when ``now`` is given) expired by then."""
    names = {"#o": "lease_owner", "#e": "lease_epoch", "#x": "lease_expires", "#l": "lease_live"}
    values: dict[str, Any] = {
        ":o": str_attr(owner),
        ":e": num_attr((old.epoch if old else 0) + 1),
        ":x": num_attr(expires),
        ":f": {"BOOL": False},
    }
    if old is None:
        condition = "attribute_not_exists(#e)"
    else:
        condition = "#e = :old"
        values[":old"] = num_attr(old.epoch)
        if now is not None:
            condition += " AND #x <= :now"
            values[":now"] = num_attr(now)
    return {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(stream)},
        "UpdateExpression": "SET #o = :o, #e = :e, #x = :x, #l = :f",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
    }


def renew_lease_update(tables: Tables, current: Lease, expires: float, live: bool) -> Item:
    """UpdateItem arguments extending ``current`` if its epoch is still the one in force
    (and marking it live; a live lease never becomes not-live again)."""
    names = {"#x": "lease_expires", "#e": "lease_epoch"}
    values: dict[str, Any] = {":x": num_attr(expires), ":e": num_attr(current.epoch)}
    update = "SET #x = :x"
    if live:
        names["#l"], values[":l"] = "lease_live", {"BOOL": True}
        update += ", #l = :l"
    return {
        "TableName": tables["streams"],
        "Key": {"stream": str_attr(current.stream)},
        "UpdateExpression": update,
        "ConditionExpression": "#e = :e",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
    }
