"""``kind: sqs | sns | eventbridge | kinesis``: send batches through boto3's batch APIs.

boto3 blocks, so each call runs in a worker thread (``asyncio.to_thread``; a client is
thread-safe). A delivery is cut into requests within each API's limits (SQS SendMessageBatch
and SNS PublishBatch 10 entries / 256 KiB, EventBridge PutEvents 10 entries / 256 KiB, Kinesis
PutRecords 500 records / 5 MiB), sent in seq order.

These APIs fail entry by entry: a request can succeed for some entries and not others. The
processor remembers which seqs the service took, raises ``ProcessorError`` so the dispatcher
retries, and sends only the rest on the retry: fewer duplicates, at the price that a retried
event can land after later events of its batch (consumers order by ``seq``). It stops at the
first request with failures, so later requests of the batch are not sent ahead of them. A
failure the sender caused (SQS/SNS ``SenderFault``, a request rejected as invalid or too long)
is permanent: the dispatcher narrows it down to the event at fault and dead-letters only that.
FIFO queues and topics (names ending in ``.fifo``) get ``MessageGroupId = stream`` (order per
stream) and ``MessageDeduplicationId = "<stream>:<seq>"`` (AWS drops repeats for 5 minutes).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
from pydantic import Field, field_validator

from longline.core.model import StoredEvent
from longline.processors.base import ProcessorError, event_dict
from longline.processors.registry import Duration, ProcessorKind, ProcessorSettings, url_secrets

__all__ = [
    "EVENTBRIDGE",
    "KINESIS",
    "SNS",
    "SQS",
    "AwsProcessor",
    "AwsSettings",
    "EventBridgeProcessor",
    "EventBridgeSettings",
    "KinesisProcessor",
    "KinesisSettings",
    "SnsProcessor",
    "SnsSettings",
    "SqsProcessor",
    "SqsSettings",
]

KIB = 1024
# Errors that say the request itself was wrong (too long, invalid): sending it again fails again.
_PERMANENT_CODES = frozenset(
    {
        "BatchRequestTooLong",
        "InvalidMessageContents",
        "MessageTooLong",
        "InvalidParameterValue",
        "InvalidParameter",
        "ValidationException",
        "ValidationError",
    }
)


class AwsSettings(ProcessorSettings):
    """Fields of every AWS kind: ``region`` (else the usual AWS chain), ``endpoint_url`` (a
    local or compatible endpoint), ``timeout`` per request. Credentials: the usual AWS chain."""

    region: str | None = None
    endpoint_url: str | None = None
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return v

    def secret_values(self) -> set[str]:
        return url_secrets(self.endpoint_url)


class SqsSettings(AwsSettings):
    kind: Literal["sqs"]
    queue_url: str

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be the queue's https:// URL (as `aws sqs get-queue-url` prints)")
        return v


class SnsSettings(AwsSettings):
    kind: Literal["sns"]
    topic_arn: str = Field(pattern=r"^arn:[^:]+:sns:[^:]*:[^:]*:[^:]+$")


class EventBridgeSettings(AwsSettings):
    kind: Literal["eventbridge"]
    event_bus_name: str = Field(default="default", min_length=1)
    source: str = Field(default="longline", min_length=1, max_length=256)
    detail_type: str = Field(default="longline.event", min_length=1, max_length=128)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("aws."):
            raise ValueError('must not start with "aws." (reserved for AWS services)')
        return v


class KinesisSettings(AwsSettings):
    kind: Literal["kinesis"]
    stream_name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,128}$")


S = TypeVar("S", bound=AwsSettings)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the service refused one entry."""

    code: str
    message: str
    sender_fault: bool = False


def _fit(value: str, limit: int = 128) -> str:
    """``value``, or a digest of it when longer than an id field allows."""
    return value if len(value) <= limit else hashlib.sha256(value.encode()).hexdigest()


def _body(stream: str, ev: StoredEvent) -> str:
    return orjson.dumps(event_dict(stream, ev)).decode()


class AwsProcessor(Generic[S]):
    """The batching, threading and error handling the four kinds share."""

    service: ClassVar[str]
    max_entries: ClassVar[int]
    max_bytes: ClassVar[int]

    def __init__(self, settings: S, client: Any = None) -> None:
        self.settings = settings
        self._client = client
        self._accepted: dict[str, set[int]] = {}  # seqs the service took, not yet acked

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=self.settings.timeout,
            read_timeout=self.settings.timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        return boto3.session.Session().client(
            self.service,
            region_name=self.settings.region,
            endpoint_url=self.settings.endpoint_url,
            config=config,
        )

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            self._client = await asyncio.to_thread(self._make_client)
        except ImportError as exc:
            raise ProcessorError(
                f"kind {self.settings.kind} needs boto3: {exc}", permanent=True
            ) from exc
        except Exception as exc:  # no region, a malformed endpoint: configuration errors
            raise ProcessorError(f"{self.service} client: {exc}", permanent=True) from exc

    def entry(self, stream: str, ev: StoredEvent) -> tuple[dict[str, Any], int]:
        """The request entry for one event and its size as the service counts it."""
        raise NotImplementedError

    def send(self, entries: list[dict[str, Any]]) -> list[Failure | None]:
        """One batch request (blocking); a failure or None per entry, in order."""
        raise NotImplementedError

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        if self._client is None:
            await self.start()
        first = events[0].seq if events else 0
        accepted = self._accepted.setdefault(stream, set())
        accepted.difference_update([s for s in accepted if s < first])  # a lane only moves on
        todo = [ev for ev in events if ev.seq not in accepted]
        for chunk in self._chunks(stream, todo):
            results = await self._send(chunk)
            failed = [(ev, f) for (ev, _), f in zip(chunk, results, strict=True) if f is not None]
            accepted.update(ev.seq for (ev, _), f in zip(chunk, results, strict=True) if f is None)
            if failed:
                bad, why = failed[0]
                raise ProcessorError(
                    f"{self.service}: {len(failed)} of {len(chunk)} entries failed, first "
                    f"{stream} seq {bad.seq}: {why.code}: {why.message}",
                    permanent=all(f.sender_fault for _, f in failed),
                )
        accepted.difference_update(ev.seq for ev in events)

    def _chunks(
        self, stream: str, events: list[StoredEvent]
    ) -> Iterator[list[tuple[StoredEvent, dict[str, Any]]]]:
        chunk: list[tuple[StoredEvent, dict[str, Any]]] = []
        size = 0
        for ev in events:
            entry, n = self.entry(stream, ev)
            if chunk and (len(chunk) == self.max_entries or size + n > self.max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append((ev, entry))
            size += n
        if chunk:
            yield chunk

    async def _send(self, chunk: list[tuple[StoredEvent, dict[str, Any]]]) -> list[Failure | None]:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            return await asyncio.to_thread(self.send, [entry for _, entry in chunk])
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")).rsplit(".", 1)[-1]
            raise ProcessorError(
                f"{self.service}: {exc}", permanent=code in _PERMANENT_CODES
            ) from exc
        except BotoCoreError as exc:
            # An endpoint that can't be reached (refused, connect timeout) is the service being
            # unavailable, not the batch: the dispatcher waits for it instead of dead-lettering.
            unavailable = isinstance(exc, BotoConnectionError)
            raise ProcessorError(
                f"{self.service}: {type(exc).__name__}: {exc}", unavailable=unavailable
            ) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


def _by_id(response: dict[str, Any], entries: list[dict[str, Any]]) -> list[Failure | None]:
    """Per-entry results of SQS/SNS batch calls, which name entries by ``Id``."""
    failed = {
        f["Id"]: Failure(f.get("Code", "?"), f.get("Message", ""), bool(f.get("SenderFault")))
        for f in response.get("Failed", [])
    }
    return [failed.get(e["Id"]) for e in entries]


def _by_position(
    results: list[dict[str, Any]], entries: list[dict[str, Any]]
) -> list[Failure | None]:
    """Per-entry results of PutEvents/PutRecords, which answer in request order."""
    if len(results) != len(entries):
        return [Failure("IncompleteResponse", f"{len(results)} results")] * len(entries)
    return [
        Failure(r["ErrorCode"], r.get("ErrorMessage", "")) if r.get("ErrorCode") else None
        for r in results
    ]


def _message(
    body_field: str, stream: str, ev: StoredEvent, fifo: bool
) -> tuple[dict[str, Any], int]:
    """An SQS or SNS batch entry: the event as JSON, ``stream``/``seq`` as attributes (for
    subscription filters), its seq as ``Id`` (unique in a batch)."""
    body = _body(stream, ev)
    attrs = {
        "stream": {"DataType": "String", "StringValue": stream},
        "seq": {"DataType": "Number", "StringValue": str(ev.seq)},
    }
    entry: dict[str, Any] = {"Id": str(ev.seq), body_field: body, "MessageAttributes": attrs}
    if fifo:
        entry["MessageGroupId"] = _fit(stream)
        entry["MessageDeduplicationId"] = _fit(f"{stream}:{ev.seq}")
    size = len(body.encode()) + len(stream.encode()) + len(str(ev.seq)) + 28  # names, types
    return entry, size


class SqsProcessor(AwsProcessor[SqsSettings]):
    service = "sqs"
    max_entries = 10
    max_bytes = 256 * KIB

    def entry(self, stream: str, ev: StoredEvent) -> tuple[dict[str, Any], int]:
        return _message("MessageBody", stream, ev, self.settings.queue_url.endswith(".fifo"))

    def send(self, entries: list[dict[str, Any]]) -> list[Failure | None]:
        resp = self._client.send_message_batch(QueueUrl=self.settings.queue_url, Entries=entries)
        return _by_id(resp, entries)


class SnsProcessor(AwsProcessor[SnsSettings]):
    service = "sns"
    max_entries = 10
    max_bytes = 256 * KIB

    def entry(self, stream: str, ev: StoredEvent) -> tuple[dict[str, Any], int]:
        return _message("Message", stream, ev, self.settings.topic_arn.endswith(".fifo"))

    def send(self, entries: list[dict[str, Any]]) -> list[Failure | None]:
        resp = self._client.publish_batch(
            TopicArn=self.settings.topic_arn, PublishBatchRequestEntries=entries
        )
        return _by_id(resp, entries)


class EventBridgeProcessor(AwsProcessor[EventBridgeSettings]):
    service = "events"
    max_entries = 10
    max_bytes = 256 * KIB

    def entry(self, stream: str, ev: StoredEvent) -> tuple[dict[str, Any], int]:
        s = self.settings
        detail = _body(stream, ev)
        entry = {
            "Source": s.source,
            "DetailType": s.detail_type,
            "Detail": detail,
            "EventBusName": s.event_bus_name,
        }
        size = 14 + len(s.source) + len(s.detail_type) + len(detail.encode())  # 14: Time
        return entry, size

    def send(self, entries: list[dict[str, Any]]) -> list[Failure | None]:
        resp = self._client.put_events(Entries=entries)
        return _by_position(resp.get("Entries", []), entries)


class KinesisProcessor(AwsProcessor[KinesisSettings]):
    service = "kinesis"
    max_entries = 500
    max_bytes = 5 * KIB * KIB

    def entry(self, stream: str, ev: StoredEvent) -> tuple[dict[str, Any], int]:
        data = _body(stream, ev).encode()
        key = stream[:256]  # one stream's records go to one shard, which keeps their order
        return {"Data": data, "PartitionKey": key}, len(data) + len(key.encode())

    def send(self, entries: list[dict[str, Any]]) -> list[Failure | None]:
        resp = self._client.put_records(StreamName=self.settings.stream_name, Records=entries)
        return _by_position(resp.get("Records", []), entries)


_BOTO = ("boto3", "botocore")

SQS = ProcessorKind("sqs", SqsSettings, SqsProcessor, "aws", _BOTO)
SNS = ProcessorKind("sns", SnsSettings, SnsProcessor, "aws", _BOTO)
EVENTBRIDGE = ProcessorKind("eventbridge", EventBridgeSettings, EventBridgeProcessor, "aws", _BOTO)
KINESIS = ProcessorKind("kinesis", KinesisSettings, KinesisProcessor, "aws", _BOTO)
