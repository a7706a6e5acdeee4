"""The Event Processor of the seed's architecture: DynamoDB Streams -> longline's processors.

Deployed as its own Lambda function (``longline.aws.stream_processor.handler``) on the events
table's stream (NEW_IMAGE). Each record is an event the store committed; the handler groups the
records by stream, in order, and delivers them to every configured processor of that stream
(the same python, webhook, command, redis, nats, sqs, ... kinds ``longline run`` uses). It then
moves the processor's delivery cursor in the store, so ``longline deadletters`` and ``replay``
work the same way as with the in-process dispatcher.

Failures: a permanent ``ProcessorError`` dead-letters the events (after bisecting to the poison
one); a transient failure reports the first record of the failed group in
``batchItemFailures``, so Lambda retries from there (``ReportBatchItemFailures``):
at-least-once, like every other path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from longline.config import Config
from longline.core.model import StoredEvent
from longline.delivery.dispatcher import deliver_batch
from longline.processors.base import Processor, ProcessorError
from longline.processors.registry import ProcessorSettings, build_processor
from longline.stores import open_store
from longline.stores.base import DeliveryLog, Store
from longline.stores.dynamodb.items import stored_event

log = logging.getLogger(__name__)

Group = tuple[str, list[tuple[str, StoredEvent]]]  # (stream, [(sequence number, event)])


def group_records(records: Sequence[dict[str, Any]]) -> list[Group]:
    """Consecutive INSERT records of the same stream, in arrival order."""
    groups: list[Group] = []
    for rec in records:
        if rec.get("eventName") != "INSERT":
            continue  # longline never updates or deletes events
        ddb = rec["dynamodb"]
        image = ddb["NewImage"]
        stream = image["stream"]["S"]
        item = (str(ddb.get("SequenceNumber", "")), stored_event(image))
        if groups and groups[-1][0] == stream:
            groups[-1][1].append(item)
        else:
            groups.append((stream, [item]))
    return groups


def _wants(settings: ProcessorSettings, stream: str) -> bool:
    return settings.streams is None or stream in settings.streams


async def process_records(
    cfg: Config, records: Sequence[dict[str, Any]], store: Store | None = None
) -> dict[str, Any]:
    """Deliver the records' events; returns the Lambda partial-batch response."""
    groups = group_records(records)
    async with store or open_store(cfg.store) as opened:
        return await _process(cfg, groups, opened)


async def _process(cfg: Config, groups: list[Group], store: DeliveryLog) -> dict[str, Any]:
    processors = {p.name: build_processor(p) for p in cfg.processors}
    try:
        for proc in processors.values():
            await proc.start()
        for stream, items in groups:
            events = [ev for _, ev in items]
            for settings in cfg.processors:
                if not _wants(settings, stream):
                    continue
                dead = await _deliver_once(
                    processors[settings.name], settings, stream, events, cfg.secrets
                )
                if dead is None:
                    log.warning(
                        "processor %s: stream %s: retrying from record %s",
                        settings.name,
                        stream,
                        items[0][0],
                    )
                    return {"batchItemFailures": [{"itemIdentifier": items[0][0]}]}
                await store.ack(settings.name, stream, events[-1].seq, dead)
        return {"batchItemFailures": []}
    finally:
        for proc in processors.values():
            await proc.close()


async def _deliver_once(
    processor: Processor,
    settings: ProcessorSettings,
    stream: str,
    events: list[StoredEvent],
    secrets: frozenset[str],
) -> list[tuple[StoredEvent, str, int]] | None:
    """One attempt; Lambda's retries (and ``BisectBatchOnFunctionError``) do the rest.

    Returns the dead letters (empty when all were delivered), or None for a transient failure
    that Lambda should retry. A permanent failure is bisected down to the poison events by the
    dispatcher's own ``deliver_batch``, so only those become dead letters.
    """
    try:
        await processor.deliver(stream, events)
        return []
    except ProcessorError as exc:
        if not exc.permanent:
            return None
    except Exception:  # a processor bug: retry, as the dispatcher would
        return None
    return await deliver_batch(
        processor, stream, events, settings.retry, name=settings.name, secrets=secrets
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler wired to the events table's stream."""
    from longline.aws.lambda_handler import load_from_env
    from longline.ops.logging import setup_logging

    cfg = load_from_env()
    setup_logging("INFO", secrets=cfg.secrets)
    return asyncio.run(process_records(cfg, event.get("Records", [])))
