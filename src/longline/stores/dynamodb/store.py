"""DynamoDB store (boto3 on a thread pool): the serverless deployments' store.

Why it is shaped this way (see docs/stores.md for the tables and the costs):
- An event is two items written in one ``TransactWriteItems``: the event under
  ``(stream, seq)`` and a key item under ``(stream, key)`` put with ``attribute_not_exists``, so
  ``(stream, key)`` is idempotent; the same transaction updates the stream's ``last_seq`` on the
  condition that it still holds the value the seqs were numbered from. Two appenders racing on
  one stream therefore never both commit the same seq and never leave a gap: the loser's
  transaction is cancelled, it re-reads ``last_seq``, drops the keys that turned out to exist
  (found with ``BatchGetItem``) and tries again.
- A transaction holds at most 100 items and 4 MB, so a large batch is split into parts. Each
  part commits its events together with ``last_seq``; the checkpoint is written only with the
  last part, after every earlier part is durable. A crash between parts leaves stored events
  with the older checkpoint: the provider replays them on resume and they are dropped as
  duplicates, so nothing is lost or doubled and a retry of the same batch is idempotent.
- Items over DynamoDB's 400 KB limit are quarantined with that reason instead of failing the
  batch; throttling and transaction conflicts are retried (in ``base``).

Layers: ``base`` (client, calls, retries) <- ``delivery`` (cursors, dead letters) and
``leases`` <- this module (the event log: capture and reads); ``items`` holds the pure rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from longline.core.model import (
    AppendResult,
    Event,
    Quarantined,
    StoredEvent,
    StoredQuarantine,
    Totals,
)
from longline.stores.base import Store, StoreError
from longline.stores.dynamodb import items as di
from longline.stores.dynamodb.delivery import DynamoDBDelivery
from longline.stores.dynamodb.leases import DynamoDBLeases

__all__ = ["DynamoDBStore"]


class DynamoDBStore(DynamoDBDelivery, DynamoDBLeases, Store):
    """A :class:`~longline.stores.base.Store` in six DynamoDB tables named ``PREFIX_*``.

    Constructor arguments: see :class:`~longline.stores.dynamodb.base.DynamoDBBase`.
    """

    # -- append ----------------------------------------------------------------------------

    async def append(
        self,
        stream: str,
        events: Sequence[Event],
        checkpoint: str | None = None,
        epoch: int | None = None,
        reconnects: int = 0,
    ) -> AppendResult:
        """Insert new events and save the checkpoint (see ``EventLog`` and the module docstring).

        Events too large for one item are quarantined and counted neither new nor duplicate.
        Each part's transaction adds its events to the stream's totals; the last one also the
        duplicates and ``reconnects`` (or, when no part is left to write, the checkpoint's
        update does).
        """
        now = time.time()
        unique: dict[str, Event] = {}
        for ev in events:
            unique.setdefault(ev.key, ev)
        pending: list[tuple[Event, int]] = []
        too_big: list[tuple[Event, int]] = []
        for ev in unique.values():
            size = di.event_size(stream, ev)
            (too_big if size > di.ITEM_LIMIT else pending).append((ev, size))
        if too_big:
            await self.quarantine(stream, [di.oversized(ev, size) for ev, size in too_big])
        base, fenced = await self._head(stream, epoch)
        new, last_cursor, saved, conflicts = 0, None, False, 0
        while pending:
            part = di.take_part(stream, pending)
            final = len(part) == len(pending)
            part_cursor = next((e.cursor for e, _ in reversed(part) if e.cursor is not None), None)
            if part_cursor is None:
                part_cursor = last_cursor
            cursor = (checkpoint if checkpoint is not None else part_cursor) if final else None
            evs = [e for e, _ in part]
            counts = {"events": len(part)}
            if final:
                counts["duplicates"] = len(events) - new - len(part) - len(too_big)
                counts["reconnects"] = reconnects
            items = di.append_items(
                self._t, stream, base, evs, None if fenced else cursor, now, counts, epoch
            )
            if final and epoch is not None and not fenced and cursor is not None:
                di.fence(items[-1]["Update"], epoch)
            try:
                await self._transact(items)
            except di.Cancelled:
                # Another appender moved last_seq, some keys exist, or a newer lease fenced us:
                # re-read and renumber without the keys already stored.
                conflicts += 1
                if conflicts > di.MAX_CONFLICTS:
                    raise StoreError(f"DynamoDB append to {stream!r}: too many conflicts") from None
                base, fenced = await self._head(stream, epoch)
                known = await self._existing_keys(stream, [e.key for e in evs])
                pending = [(e, s) for e, s in pending if e.key not in known]
                continue
            base += len(part)
            new += len(part)
            last_cursor = part_cursor
            pending = pending[len(part) :]
            saved = final
        duplicates = len(events) - new - len(too_big)
        counts = {"duplicates": duplicates, "reconnects": reconnects} if not saved else {}
        if not saved and not fenced:
            cursor = checkpoint if checkpoint is not None else last_cursor
            if cursor is not None:
                fenced = not await self._save_cursor(stream, cursor, epoch, counts)
                counts = counts if fenced else {}
        if any(counts.values()):
            await self._write("update_item", **di.totals_update(self._t, stream, counts))
        return AppendResult(new=new, duplicates=duplicates, last_seq=base, fenced=fenced)

    async def _head(self, stream: str, epoch: int | None) -> tuple[int, bool]:
        """``(last_seq, fenced)`` of a stream: fenced when its lease is newer than ``epoch``."""
        item = await self._get("streams", {"stream": {"S": stream}})
        last = int(item["last_seq"]["N"]) if item and "last_seq" in item else 0
        lease = di.lease(stream, item)
        return last, epoch is not None and lease is not None and lease.epoch > epoch

    async def _save_cursor(
        self, stream: str, cursor: str, epoch: int | None, totals: dict[str, int]
    ) -> bool:
        """Save only the checkpoint (adding ``totals``); False, and nothing written, when a
        newer lease fenced ``epoch`` off."""
        update = di.set_cursor(self._t, stream, cursor)
        di.add_totals(update, totals)
        if epoch is not None:
            di.fence(update, epoch)
        try:
            await self._write("update_item", **update)
        except di.Cancelled:
            return False
        return True

    async def _existing_keys(self, stream: str, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 100):
            request = {self._t["keys"]: di.key_lookup(stream, keys[i : i + 100])}
            while request:
                out = await self._call("batch_get_item", RequestItems=request)
                found.update(item["key"]["S"] for item in out["Responses"].get(self._t["keys"], []))
                request = out.get("UnprocessedKeys") or {}
        return found

    # -- reads and the rest of the protocol --------------------------------------------------

    async def checkpoint(self, stream: str) -> str | None:
        """The last committed cursor of ``stream``, or None."""
        item = await self._get("streams", {"stream": {"S": stream}})
        return item["cursor"]["S"] if item and "cursor" in item else None

    async def last_seq(self, stream: str) -> int:
        """The highest ``seq`` of ``stream``, 0 when it has no events."""
        item = await self._get("streams", {"stream": {"S": stream}})
        return int(item["last_seq"]["N"]) if item and "last_seq" in item else 0

    async def read(self, stream: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Stored events with ``seq > after_seq``, in ``seq`` order, at most ``limit``.

        Query is only read-committed per item, so a transaction being applied may show a later
        item before an earlier one; only the gapless run from ``after_seq + 1`` is returned.
        """
        out: list[StoredEvent] = []
        start: dict[str, Any] | None = None
        while len(out) < limit:
            args = di.query_events(self._t, stream, after_seq, limit - len(out), start)
            page = await self._call("query", **args)
            for item in page["Items"]:
                ev = di.stored_event(item)
                if ev.seq != (out[-1].seq if out else after_seq) + 1:
                    return out
                out.append(ev)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return out

    async def read_keys(self, stream: str, seqs: Sequence[int]) -> list[StoredEvent]:
        """Stored events of ``stream`` with the given seqs, in seq order."""
        wanted = sorted(set(seqs))
        items: list[dict[str, Any]] = []
        for i in range(0, len(wanted), 100):
            keys = [{"stream": {"S": stream}, "seq": {"N": str(s)}} for s in wanted[i : i + 100]]
            request = {self._t["events"]: {"Keys": keys, "ConsistentRead": True}}
            while request:
                out = await self._call("batch_get_item", RequestItems=request)
                items.extend(out["Responses"].get(self._t["events"], []))
                request = out.get("UnprocessedKeys") or {}
        return sorted((di.stored_event(i) for i in items), key=lambda e: e.seq)

    async def quarantine(self, stream: str, items: Sequence[Quarantined]) -> None:
        """Keep items that could not be stored as events (ids from a per-stream counter)."""
        if not items:
            return
        counter = {"stream": {"S": stream}, "id": {"N": "0"}}
        first = await self._allocate("quarantine", counter, len(items))
        puts = [di.quarantine_item(stream, first + i, q) for i, q in enumerate(items)]
        # Each transaction writes its items and adds them to the stream's quarantined total.
        for part in di.quarantine_parts(puts):
            count = di.totals_update(self._t, stream, {"quarantined": len(part)})
            table = self._t["quarantine"]
            await self._transact(
                [{"Put": {"TableName": table, "Item": p}} for p in part] + [{"Update": count}]
            )

    async def read_quarantine(
        self, stream: str, after_id: int = 0, limit: int = 1000
    ) -> list[StoredQuarantine]:
        """Quarantined items of ``stream`` in arrival order."""
        if limit <= 0:
            return []
        items = await self._query_all(
            TableName=self._t["quarantine"],
            KeyConditionExpression="#s = :s AND #i > :a",
            ExpressionAttributeNames={"#s": "stream", "#i": "id"},
            ExpressionAttributeValues={":s": {"S": stream}, ":a": {"N": str(max(after_id, 0))}},
            Limit=limit,
        )
        return [di.stored_quarantine(i) for i in items[:limit]]

    async def put_status(self, stream: str, status: dict[str, Any]) -> None:
        """Save the runtime status of a stream in its ``streams`` item."""
        await self._write("update_item", **di.set_status(self._t, stream, status, time.time()))

    async def get_status(self) -> dict[str, dict[str, Any]]:
        """The last saved status of every stream (a scan of the small ``streams`` table)."""
        items = await self._scan(
            "streams",
            ProjectionExpression="#s, #st",
            ExpressionAttributeNames={"#s": "stream", "#st": "status"},
        )
        return {i["stream"]["S"]: di.load_status(i) for i in items if "status" in i}

    async def totals(self) -> dict[str, Totals]:
        """The life-long counters of every stream (a scan of the small ``streams`` table)."""
        attrs = list(di.TOTALS.values())
        names = {f"#a{i}": a for i, a in enumerate(["stream", *attrs])}
        items = await self._scan(
            "streams",
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        )
        return {i["stream"]["S"]: di.load_totals(i) for i in items if any(a in i for a in attrs)}

    async def wait_for_events(self, timeout: float) -> None:
        """DynamoDB has no notification channel here: sleep, so the dispatcher polls."""
        await asyncio.sleep(timeout)


def from_url(url: str, *, create_tables: bool = False) -> DynamoDBStore:
    """Build a store from ``dynamodb://PREFIX?region=REGION&endpoint_url=URL``.

    Credentials come from the standard AWS chain (environment, profile, role), never the URL.
    """
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    region = options.pop("region", None) or None
    endpoint = options.pop("endpoint_url", None) or None
    if options:
        raise StoreError(f"unknown DynamoDB store option(s): {', '.join(sorted(options))}")
    if parts.path not in ("", "/") or not parts.netloc:
        raise StoreError("a DynamoDB store URL looks like dynamodb://PREFIX?region=...")
    return DynamoDBStore(
        parts.netloc, region=region, endpoint_url=endpoint, create_tables=create_tables
    )
