"""``kind: sqs | sns | eventbridge | kinesis`` against moto's server mode on loopback.

The server is started once for this module as a subprocess on a free port, with dummy
credentials; each test makes its own queues, topics and streams. Batching and partial failures
are also checked against a scripted client, since moto never fails a single entry.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from longline.config import ConfigError
from longline.core.model import StoredEvent
from longline.processors.aws import AwsProcessor, KinesisProcessor, SqsProcessor
from longline.processors.base import ProcessorError, event_dict
from longline.processors.registry import build_processor
from tests.processors.bus_helpers import closed_port
from tests.processors.helpers import FAST_RETRY, caught_up, config, dispatch_until, filled_store

REGION = "us-east-1"


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    """The shared moto server (``tests/services.py``)."""
    return moto_endpoint


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def unique(prefix: str = "lltest") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def proc(endpoint: str | None, kind: str, **fields: Any) -> AwsProcessor[Any]:
    entry = {"name": "p", "kind": kind, "region": REGION, "endpoint_url": endpoint, **fields}
    built = build_processor(config(Path("a.db"), entry).processors[0])
    assert isinstance(built, AwsProcessor)
    return built


def events(*seqs: int) -> list[StoredEvent]:
    """JSON payloads, except seq 2 (text, with an SSE type and a cursor)."""
    return [
        StoredEvent(s, f"k{s}", "c2", 2.5, "plain text", "tick")
        if s == 2
        else StoredEvent(s, f"k{s}", None, float(s), f'{{"id": {s}}}')
        for s in seqs
    ]


async def deliver(p: AwsProcessor[Any], *batches: list[StoredEvent], stream: str = "s") -> None:
    await p.start()
    try:
        for batch in batches:
            await p.deliver(stream, batch)
    finally:
        await p.close()


def make_queue(sqs: Any, fifo: bool = False) -> tuple[str, str]:
    """A new queue's URL and ARN."""
    name = unique() + (".fifo" if fifo else "")
    attrs = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of the queue, in the order received, deleted as read."""
    out: list[dict[str, Any]] = []
    while msgs := sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", []):
        out += msgs
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return out


def attrs(m: dict[str, Any]) -> tuple[str, str]:
    a = m["MessageAttributes"]
    return a["stream"]["StringValue"], a["seq"]["StringValue"]


# -- against moto ---------------------------------------------------------------------------


async def test_sqs_gets_every_event_in_order(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs)
    batch = events(*range(1, 24))  # three requests: 10 + 10 + 3
    await deliver(proc(endpoint, "sqs", queue_url=url), batch)
    got = drain(sqs, url)
    assert [orjson.loads(m["Body"]) for m in got] == [event_dict("s", ev) for ev in batch]
    assert [attrs(m) for m in got] == [("s", str(i)) for i in range(1, 24)]
    assert all("MessageGroupId" not in m["Attributes"] for m in got)


async def test_sqs_fifo_groups_by_stream_and_drops_redelivery(endpoint: str) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs, fifo=True)
    await deliver(proc(endpoint, "sqs", queue_url=url), events(1, 2, 3), events(1, 2, 3, 4))
    got = drain(sqs, url)
    assert [
        (orjson.loads(m["Body"])["seq"], m["Attributes"]["MessageGroupId"],
         m["Attributes"]["MessageDeduplicationId"])
        for m in got
    ] == [(i, "s", f"s:{i}") for i in range(1, 5)]  # fmt: skip


async def test_sns_publishes_to_its_subscribers(endpoint: str) -> None:
    sqs, sns = client(endpoint, "sqs"), client(endpoint, "sns")
    url, arn = make_queue(sqs)
    topic = sns.create_topic(Name=unique())["TopicArn"]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    batch = events(*range(1, 13))
    await deliver(proc(endpoint, "sns", topic_arn=topic), batch)
    got = drain(sqs, url)
    assert [orjson.loads(m["Body"]) for m in got] == [event_dict("s", ev) for ev in batch]
    assert [attrs(m) for m in got] == [("s", str(i)) for i in range(1, 13)]


async def test_sns_fifo_topic_passes_group_and_dedup_ids(endpoint: str) -> None:
    sqs, sns = client(endpoint, "sqs"), client(endpoint, "sns")
    url, arn = make_queue(sqs, fifo=True)
    topic = sns.create_topic(Name=unique() + ".fifo", Attributes={"FifoTopic": "true"})
    sns.subscribe(
        TopicArn=topic["TopicArn"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    p = proc(endpoint, "sns", topic_arn=topic["TopicArn"])
    await deliver(p, events(1, 2, 3), stream="wiki")
    got = drain(sqs, url)
    assert [
        (orjson.loads(m["Body"])["seq"], m["Attributes"]["MessageGroupId"],
         m["Attributes"]["MessageDeduplicationId"])
        for m in got
    ] == [(i, "wiki", f"wiki:{i}") for i in (1, 2, 3)]  # fmt: skip


async def test_eventbridge_events_reach_a_rule_target(endpoint: str) -> None:
    sqs, eb = client(endpoint, "sqs"), client(endpoint, "events")
    url, arn = make_queue(sqs)
    bus = eb.create_event_bus(Name=unique())["EventBusArn"].rsplit("/", 1)[1]
    source = unique("app")
    eb.put_rule(
        Name="r", EventBusName=bus, EventPattern=orjson.dumps({"source": [source]}).decode()
    )
    eb.put_targets(Rule="r", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    batch = events(*range(1, 13))
    p = proc(endpoint, "eventbridge", event_bus_name=bus, source=source, detail_type="tick")
    await deliver(p, batch)
    got = [orjson.loads(m["Body"]) for m in drain(sqs, url)]
    assert [(e["source"], e["detail-type"]) for e in got] == [(source, "tick")] * 12
    assert [e["detail"] for e in got] == [event_dict("s", ev) for ev in batch]


async def test_kinesis_records_keyed_by_stream(endpoint: str) -> None:
    kinesis = client(endpoint, "kinesis")
    name = unique()
    kinesis.create_stream(StreamName=name, ShardCount=1)
    batch = events(*range(1, 24))
    await deliver(proc(endpoint, "kinesis", stream_name=name), batch)
    shard = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"][0]
    it = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=it, Limit=1000)["Records"]
    assert [orjson.loads(r["Data"]) for r in records] == [event_dict("s", ev) for ev in batch]
    assert {r["PartitionKey"] for r in records} == {"s"}


async def test_dispatcher_delivers_every_stored_event_to_sqs(endpoint: str, tmp_path: Path) -> None:
    sqs = client(endpoint, "sqs")
    url, _ = make_queue(sqs, fifo=True)
    db = tmp_path / "d.db"
    store = await filled_store(db, 25)
    entry = {"name": "q", "kind": "sqs", "queue_url": url, "region": REGION}
    cfg = config(db, {**entry, "endpoint_url": endpoint, "batch": 7, "retry": FAST_RETRY})
    try:
        await dispatch_until(cfg, store, caught_up(25))
    finally:
        await store.close()
    bodies = [orjson.loads(m["Body"]) for m in drain(sqs, url)]
    assert [b["seq"] for b in bodies] == list(range(1, 26))
    assert [b["payload"] for b in bodies] == [{"id": i} for i in range(1, 26)]


async def test_a_missing_queue_is_a_retried_error(endpoint: str) -> None:
    url = f"{endpoint}/123456789012/{unique()}"
    with pytest.raises(ProcessorError, match="sqs:") as info:
        await deliver(proc(endpoint, "sqs", queue_url=url), events(1))
    assert not info.value.permanent


async def test_an_unreachable_endpoint_is_a_retried_error() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    p = proc(endpoint, "kinesis", stream_name="x", timeout="1s")
    with pytest.raises(ProcessorError, match="EndpointConnectionError") as info:
        await deliver(p, events(1))
    assert not info.value.permanent


async def test_no_region_stops_the_processor_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    p = proc(None, "sqs", queue_url="https://sqs.example/1/q", region=None)
    with pytest.raises(ProcessorError, match="region") as info:
        await p.start()
    assert info.value.permanent


# -- batching and partial failures, against a scripted client --------------------------------


class Scripted:
    """Answers SendMessageBatch / PutRecords; ``fail[call_number]`` = {seq: sender_fault}."""

    def __init__(self, fail: dict[int, dict[int, bool]] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[list[int]] = []
        self.sizes: list[int] = []

    def _record(self, seqs: list[int], size: int) -> dict[int, bool]:
        self.calls.append(seqs)
        self.sizes.append(size)
        return self.fail.get(len(self.calls), {})

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        seqs = [int(e["Id"]) for e in Entries]
        fail = self._record(seqs, sum(len(e["MessageBody"]) for e in Entries))
        return {
            "Successful": [{"Id": str(s)} for s in seqs if s not in fail],
            "Failed": [
                {"Id": str(s), "Code": "Boom", "Message": "no", "SenderFault": fault}
                for s, fault in fail.items()
                if s in seqs
            ],
        }

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        seqs = [orjson.loads(r["Data"])["seq"] for r in Records]
        fail = self._record(seqs, sum(len(r["Data"]) for r in Records))
        return {
            "FailedRecordCount": len(fail),
            "Records": [
                {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                if s in fail
                else {"SequenceNumber": str(s), "ShardId": "shardId-0"}
                for s in seqs
            ],
        }

    def close(self) -> None:
        pass


def scripted(kind: str, fake: Scripted) -> AwsProcessor[Any]:
    target = {"queue_url": "https://sqs.example/1/q"} if kind == "sqs" else {"stream_name": "k"}
    settings = proc(None, kind, **target).settings
    cls = SqsProcessor if kind == "sqs" else KinesisProcessor
    return cls(settings, client=fake)


async def test_a_retry_resends_only_the_entries_that_failed() -> None:
    fake = Scripted({1: {3: False, 12: False}})  # 12 is not in the first request
    p = scripted("sqs", fake)
    with pytest.raises(ProcessorError, match="1 of 10 entries failed, first s seq 3") as info:
        await p.deliver("s", events(*range(1, 16)))
    assert not info.value.permanent
    assert fake.calls == [list(range(1, 11))]  # stopped at the first request with failures
    await p.deliver("s", events(*range(1, 16)))
    assert fake.calls[1:] == [[3, 11, 12, 13, 14, 15]]


async def test_sender_faults_are_permanent_and_isolated_by_bisection() -> None:
    fake = Scripted({1: {2: True}, 2: {2: True}})
    p = scripted("sqs", fake)
    with pytest.raises(ProcessorError) as info:
        await p.deliver("s", events(1, 2, 3, 4))
    assert info.value.permanent
    await p.deliver("s", events(1))  # the dispatcher's bisection: halves, in order
    with pytest.raises(ProcessorError):
        await p.deliver("s", events(2))
    await p.deliver("s", events(3, 4))
    assert fake.calls == [[1, 2, 3, 4], [2]]  # 1, 3 and 4 were taken the first time


async def test_kinesis_positional_failures_are_retried() -> None:
    fake = Scripted({1: {499: False}})
    p = scripted("kinesis", fake)
    with pytest.raises(ProcessorError, match="1 of 500 entries failed, first s seq 499"):
        await p.deliver("s", events(*range(1, 1202)))
    await p.deliver("s", events(*range(1, 1202)))
    assert [len(c) for c in fake.calls] == [500, 500, 202]
    assert fake.calls[1][0] == 499 and fake.calls[1][1:] == list(range(501, 1000))


async def test_requests_stay_under_the_byte_limit() -> None:
    fake = Scripted()
    p = scripted("sqs", fake)
    big = "x" * 100_000
    await p.deliver("s", [StoredEvent(i, f"k{i}", None, 1.0, big) for i in range(1, 6)])
    assert fake.calls == [[1, 2], [3, 4], [5]]
    assert max(fake.sizes) < 256 * 1024


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "field", "message"),
    [
        ("sqs", {"queue_url": "q1"}, "queue_url", "https://"),
        ("sqs", {}, "queue_url", "required"),
        ("sns", {"topic_arn": "topic"}, "topic_arn", "arn:"),
        ("eventbridge", {"source": "aws.events"}, "source", '"aws."'),
        ("kinesis", {"stream_name": "a b"}, "stream_name", "pattern"),
        ("kinesis", {"stream_name": "k", "endpoint_url": "ftp://x"}, "endpoint_url", "http"),
    ],
)
def test_config_errors_name_the_field(
    kind: str, fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config(Path("x.db"), {"name": "p", "kind": kind, **fields})
    (err,) = info.value.errors
    assert err.startswith(f"processors[0].{field}: ") and message in err
