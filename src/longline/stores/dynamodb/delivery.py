"""Delivery cursors and dead letters for ``DynamoDBStore`` (the store is the processors' outbox).

Kept apart from ``store.py``, as for every backend: these coordinate processors through small
items, away from the capture path. ``ack`` writes the dead letters and the conditional cursor
update (``seq < new``) in one transaction; a dead letter is one item per (processor, stream,
seq), so failing again updates it and keeps its id (ids come from a counter item).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from longline.core.model import DeadLetter, StoredEvent
from longline.stores.base import DeliveryLog, StoreError
from longline.stores.dynamodb import items as di
from longline.stores.dynamodb.base import DynamoDBBase
from longline.stores.dynamodb.items import Item, Tables, num_attr, str_attr

__all__ = ["DynamoDBDelivery"]


class DynamoDBDelivery(DynamoDBBase, DeliveryLog):
    """The :class:`~longline.stores.base.DeliveryLog` of ``DynamoDBStore``."""

    async def delivery_cursor(self, processor: str, stream: str) -> int:
        """The highest ``seq`` of ``stream`` acknowledged by ``processor`` (0 when none)."""
        item = await self._get("delivery", delivery_key(processor, stream))
        return int(item["seq"]["N"]) if item else 0

    async def ack(
        self,
        processor: str,
        stream: str,
        seq: int,
        dead: Sequence[tuple[StoredEvent, str, int]] = (),
    ) -> None:
        """Advance the delivery cursor (never backwards) together with the dead letters."""
        now = time.time()
        updates: list[dict[str, Any]] = []
        if dead:
            first = await self._allocate("deadletters", DEAD_COUNTER, len(dead))
            updates = [
                dead_letter_update(self._t, first + i, processor, stream, ev, err, n, now)
                for i, (ev, err, n) in enumerate(dead)
            ]
        while len(updates) > 99:  # only the last transaction can carry the cursor
            await self._transact(updates[:99])
            updates = updates[99:]
        for _ in range(di.MAX_CONFLICTS):
            items = list(updates)
            if seq > await self.delivery_cursor(processor, stream):
                items.append(advance_delivery(self._t, processor, stream, seq, now))
            if not items:
                return
            try:
                await self._transact(items)
                return
            except di.Cancelled:
                continue  # another worker moved the cursor: re-read it
        raise StoreError(f"DynamoDB ack of {processor!r}/{stream!r}: too many conflicts")

    async def dead_letters(
        self, processor: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[DeadLetter]:
        """Dead letters in id order (of one processor: a query; of all: a scan)."""
        if processor is None:
            items = await self._scan("deadletters")
        else:
            items = await self._query_all(
                TableName=self._t["deadletters"],
                KeyConditionExpression="#p = :p",
                ExpressionAttributeNames={"#p": "processor"},
                ExpressionAttributeValues={":p": {"S": processor}},
            )
        letters = [dead_letter(i) for i in items if "seq" in i]
        letters = sorted((d for d in letters if d.id > after_id), key=lambda d: d.id)
        return letters[: max(limit, 0)]

    async def drop_dead_letters(self, ids: Sequence[int]) -> None:
        """Remove dead letters (after a successful re-delivery); finds them with a scan."""
        wanted = set(ids)
        if not wanted:
            return
        items = await self._scan(
            "deadletters",
            ProjectionExpression="#p, #r, #i",
            ExpressionAttributeNames={"#p": "processor", "#r": "ref", "#i": "id"},
        )
        keys = [
            {"processor": i["processor"], "ref": i["ref"]}
            for i in items
            if "id" in i and int(i["id"]["N"]) in wanted
        ]
        await self._batch_write("deadletters", [{"DeleteRequest": {"Key": k}} for k in keys])


# -- items ------------------------------------------------------------------------------


def delivery_key(processor: str, stream: str) -> Item:
    return {"processor": str_attr(processor), "stream": str_attr(stream)}


def advance_delivery(tables: Tables, processor: str, stream: str, seq: int, now: float) -> Item:
    """A transaction action moving the delivery cursor forward only."""
    return {
        "Update": {
            "TableName": tables["delivery"],
            "Key": delivery_key(processor, stream),
            "UpdateExpression": "SET #q = :q, #t = :t",
            "ConditionExpression": "attribute_not_exists(#q) OR #q < :q",
            "ExpressionAttributeNames": {"#q": "seq", "#t": "updated_at"},
            "ExpressionAttributeValues": {":q": num_attr(seq), ":t": num_attr(now)},
        }
    }


DEAD_COUNTER = {"processor": {"S": "\x00"}, "ref": {"S": "\x00"}}  # the id counter item


def dead_letter_update(
    tables: Tables,
    ident: int,
    processor: str,
    stream: str,
    ev: StoredEvent,
    error: str,
    attempts: int,
    now: float,
) -> Item:
    """A transaction action recording a dead letter, one per (processor, stream, seq): failing
    again updates the error and adds to the attempts, and the first id is kept."""
    return {
        "Update": {
            "TableName": tables["deadletters"],
            "Key": {
                "processor": str_attr(processor),
                "ref": str_attr(f"{stream}\x00{ev.seq:020d}"),
            },
            "UpdateExpression": "SET #i = if_not_exists(#i, :i), #s = :s, #q = :q, #k = :k,"
            " #e = :e, #f = :f ADD #a :a",
            "ExpressionAttributeNames": {
                "#i": "id",
                "#s": "stream",
                "#q": "seq",
                "#k": "key",
                "#e": "error",
                "#f": "failed_at",
                "#a": "attempts",
            },
            "ExpressionAttributeValues": {
                ":i": num_attr(ident),
                ":s": str_attr(stream),
                ":q": num_attr(ev.seq),
                ":k": str_attr(ev.key),
                ":e": str_attr(error[:10_000]),
                ":f": num_attr(now),
                ":a": num_attr(attempts),
            },
        }
    }


def dead_letter(item: Item) -> DeadLetter:
    return DeadLetter(
        id=int(item["id"]["N"]),
        processor=item["processor"]["S"],
        stream=item["stream"]["S"],
        seq=int(item["seq"]["N"]),
        key=item["key"]["S"],
        error=item["error"]["S"],
        attempts=int(item["attempts"]["N"]),
        failed_at=float(item["failed_at"]["N"]),
    )
