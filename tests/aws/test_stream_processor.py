"""DynamoDB Streams -> processors: records read from a real (moto) table stream are delivered."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from longline.aws.stream_processor import process_records
from longline.config import Config, parse_config
from longline.core.model import Event
from longline.processors.base import ProcessorError
from longline.stores import open_store

DELIVERED: list[tuple[str, int, Any]] = []
FAIL: dict[str, str] = {}


def collect(events: list[dict[str, Any]]) -> None:
    """The python processor under test: records what it got, fails on demand."""
    for ev in events:
        if FAIL.get("mode") == "transient":
            raise RuntimeError("downstream unavailable")
        if FAIL.get("mode") == "poison" and ev["payload"] == {"n": 3}:
            raise ProcessorError("cannot handle n=3", permanent=True)
    DELIVERED.extend((ev["stream"], ev["seq"], ev["payload"]) for ev in events)


def config(url: str) -> Config:
    return parse_config({
        "store": url,
        "streams": [{"name": n, "transport": "lines", "url": "http://127.0.0.1:9/"}
                    for n in ("a", "b")],
        "processors": [{"name": "p", "kind": "python",
                        "target": "tests.aws.test_stream_processor:collect",
                        "retry": {"max_attempts": 2, "initial": "10ms", "max": "20ms"}}],
    })


async def stream_records(url: str, endpoint: str) -> tuple[Config, list[dict[str, Any]]]:
    cfg = config(url)
    store = open_store(url, create_tables=True)
    await store.open()
    try:
        for stream in ("a", "b"):
            evs = [Event(key=f"{stream}{i}", payload=f'{{"n": {i}}}', cursor=str(i),
                         received_at=1.0) for i in range(1, 6)]
            await store.append(stream, evs[:3])
            await store.append(stream, evs)  # 3 duplicates: no new stream records
    finally:
        await store.close()
    prefix = url.split("//")[1].split("?")[0]
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    arn = ddb.describe_table(TableName=f"{prefix}_events")["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name="us-east-1")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=it)["Records"])
    return cfg, records


def table_url(endpoint: str) -> str:
    return f"dynamodb://sp{uuid.uuid4().hex[:10]}?region=us-east-1&endpoint_url={endpoint}"


@pytest.fixture(autouse=True)
def _reset() -> None:
    DELIVERED.clear()
    FAIL.clear()


async def test_records_delivered_in_order_and_cursor_moved(moto_endpoint: str) -> None:
    url = table_url(moto_endpoint)
    cfg, records = await stream_records(url, moto_endpoint)
    assert len(records) == 10
    assert await process_records(cfg, records) == {"batchItemFailures": []}
    assert [(s, i, {"n": i}) for s in ("a", "b") for i in range(1, 6)] == DELIVERED
    store = open_store(url)
    await store.open()
    try:
        assert await store.delivery_cursor("p", "a") == 5
        assert await store.delivery_cursor("p", "b") == 5
    finally:
        await store.close()


async def test_transient_failure_reports_the_first_record_for_retry(moto_endpoint: str) -> None:
    url = table_url(moto_endpoint)
    cfg, records = await stream_records(url, moto_endpoint)
    FAIL["mode"] = "transient"
    result = await process_records(cfg, records)
    first = records[0]["dynamodb"]["SequenceNumber"]
    assert result == {"batchItemFailures": [{"itemIdentifier": first}]}
    assert DELIVERED == []


async def test_poison_event_dead_lettered_rest_delivered(moto_endpoint: str) -> None:
    url = table_url(moto_endpoint)
    cfg, records = await stream_records(url, moto_endpoint)
    FAIL["mode"] = "poison"
    assert await process_records(cfg, records) == {"batchItemFailures": []}
    assert [(s, i, {"n": i}) for s in ("a", "b") for i in (1, 2, 4, 5)] == DELIVERED
    store = open_store(url)
    await store.open()
    try:
        dead = await store.dead_letters("p")
        assert sorted((d.stream, d.seq) for d in dead) == [("a", 3), ("b", 3)]
        assert all("cannot handle n=3" in d.error for d in dead)
    finally:
        await store.close()
