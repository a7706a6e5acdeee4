"""The fault-injecting DynamoDB proxy in front of moto: each injected error as botocore parses
it, and everything else passed through untouched."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from longline.testing.dynamodb_faults import DynamoDBFaultProxy

boto3 = pytest.importorskip("boto3")
botocore_config = pytest.importorskip("botocore.config")
ClientError = pytest.importorskip("botocore.exceptions").ClientError


@pytest.fixture
async def proxy(moto_endpoint: str) -> AsyncIterator[DynamoDBFaultProxy]:
    async with DynamoDBFaultProxy(moto_endpoint, seed=7) as p:
        yield p


def client(url: str) -> Any:
    """A client that does not retry, so every injected error reaches the test."""
    config = botocore_config.Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=url, config=config)


def make_table(c: Any) -> str:
    name = f"llproxy{uuid.uuid4().hex[:10]}"
    c.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def puts(table: str, *keys: str) -> list[dict[str, Any]]:
    return [{"Put": {"TableName": table, "Item": {"k": {"S": k}}}} for k in keys]


async def test_calls_pass_through_untouched(proxy: DynamoDBFaultProxy) -> None:
    c = client(proxy.url)
    table = await asyncio.to_thread(make_table, c)
    await asyncio.to_thread(c.transact_write_items, TransactItems=puts(table, "a", "b"))
    got = await asyncio.to_thread(c.get_item, TableName=table, Key={"k": {"S": "b"}})
    assert got["Item"] == {"k": {"S": "b"}}
    assert proxy.forwarded["TransactWriteItems"] == 1
    assert proxy.forwarded["GetItem"] == 1
    assert not proxy.injected


async def test_throttles_parse_as_dynamodb_throttling_errors(proxy: DynamoDBFaultProxy) -> None:
    c = client(proxy.url)
    table = await asyncio.to_thread(make_table, c)
    proxy.throttle = 1.0
    codes = set()
    for _ in range(20):
        with pytest.raises(ClientError) as info:
            await asyncio.to_thread(c.get_item, TableName=table, Key={"k": {"S": "x"}})
        err = info.value.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err["Error"]["Message"]
        codes.add(err["Error"]["Code"])
    assert codes == {"ProvisionedThroughputExceededException", "ThrottlingException"}
    assert sum(proxy.injected.values()) == 20
    assert proxy.forwarded["GetItem"] == 0


async def test_a_conflict_cancels_the_transaction_with_one_reason_per_item(
    proxy: DynamoDBFaultProxy,
) -> None:
    c = client(proxy.url)
    table = await asyncio.to_thread(make_table, c)
    proxy.conflict = 1.0
    with pytest.raises(c.exceptions.TransactionCanceledException) as info:
        await asyncio.to_thread(c.transact_write_items, TransactItems=puts(table, "a", "b", "c"))
    reasons = [r["Code"] for r in info.value.response["CancellationReasons"]]
    assert len(reasons) == 3
    assert sorted(reasons) == ["None", "None", "TransactionConflict"]
    assert "TransactionConflict" in info.value.response["Error"]["Message"]
    proxy.conflict = 0.0
    got = await asyncio.to_thread(c.get_item, TableName=table, Key={"k": {"S": "a"}})
    assert "Item" not in got  # nothing of a cancelled transaction was applied


async def test_deny_refuses_every_call_until_cleared(proxy: DynamoDBFaultProxy) -> None:
    c = client(proxy.url)
    proxy.deny = "AccessDeniedException"
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(c.list_tables)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "not authorized" in info.value.response["Error"]["Message"]
    proxy.deny = None
    await asyncio.to_thread(c.list_tables)
    assert proxy.injected == {"AccessDeniedException": 1}
