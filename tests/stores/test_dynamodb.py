"""DynamoDBStore specifics: tables, transaction parts, item limits, throttling, write units.

The shared promises (append, checkpoint, delivery, leases, SIGKILL) are in tests/contract/.
Tests that need DynamoDB's behaviour run against moto's server; the ones about our own
accounting use a tiny in-memory stand-in for the client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from longline.core.model import AppendResult, Event
from longline.stores import StoreError, open_store
from longline.stores.dynamodb import items as di
from longline.stores.dynamodb.store import DynamoDBStore, from_url
from longline.testing.dynamodb_faults import DynamoDBFaultProxy

boto3 = pytest.importorskip("boto3")
ClientError = pytest.importorskip("botocore.exceptions").ClientError
ConnectionClosedError = pytest.importorskip("botocore.exceptions").ConnectionClosedError


def ev(key: str, cursor: str | None = None, size: int = 200) -> Event:
    return Event(key=key, payload="x" * size, cursor=cursor, received_at=1.0)


class Recording:
    """Delegates to a real client; records transactions and can fail the n-th one."""

    def __init__(self, client: Any, fail_on: int | None = None) -> None:
        self.client = client
        self.transactions: list[list[dict[str, Any]]] = []
        self.fail_on = fail_on

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions.append(kwargs["TransactItems"])
        if len(self.transactions) == self.fail_on:
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1")  # the process died here
        return self.client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _client(endpoint: str) -> Any:
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def prefix() -> str:
    return f"lltest{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(moto_endpoint: str, prefix: str) -> AsyncIterator[DynamoDBStore]:
    s = DynamoDBStore(prefix, endpoint_url=moto_endpoint, region="us-east-1", create_tables=True)
    await s.open()
    yield s
    await s.close()


async def test_missing_tables_are_refused_then_created_on_demand_with_streams(
    moto_endpoint: str,
    prefix: str,
) -> None:
    url = f"dynamodb://{prefix}?region=us-east-1&endpoint_url={moto_endpoint}"
    with pytest.raises(StoreError, match="longline init CONFIG") as info:
        await open_store(url).open()
    assert f"{prefix}_events, {prefix}_keys" in str(info.value)
    store = open_store(url, create_tables=True)
    await store.open()
    await store.close()
    assert isinstance(store, DynamoDBStore)
    suffixes = ["events", "keys", "streams", "quarantine", "delivery", "deadletters"]
    assert store.created == [f"{prefix}_{s}" for s in suffixes]
    table = _client(moto_endpoint).describe_table(TableName=f"{prefix}_events")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["stream", "seq"]
    again = open_store(url)  # tables exist now: no flag needed, nothing created
    await again.open()
    await again.close()
    assert isinstance(again, DynamoDBStore) and again.created == []


async def test_a_large_batch_commits_in_parts_and_the_checkpoint_with_the_last(
    moto_endpoint: str,
    prefix: str,
) -> None:
    recording = Recording(_client(moto_endpoint))
    store = DynamoDBStore(prefix, client=recording, create_tables=True)
    await store.open()
    events = [ev(f"k{i}", f"c{i}") for i in range(1, 121)]
    assert await store.append("s", events) == AppendResult(120, 0, 120)
    assert [len(t) for t in recording.transactions] == [99, 99, 45]  # 49 + 49 + 22 events
    with_cursor = ["#c" in t[-1]["Update"]["UpdateExpression"] for t in recording.transactions]
    assert with_cursor == [False, False, True]
    assert await store.checkpoint("s") == "c120"
    await store.close()


async def test_a_crash_between_parts_keeps_seqs_gapless_and_the_old_checkpoint(
    moto_endpoint: str,
    prefix: str,
) -> None:
    failing = Recording(_client(moto_endpoint), fail_on=3)
    store = DynamoDBStore(prefix, client=failing, create_tables=True)
    await store.open()
    await store.append("s", [ev("k0", "c0")])  # transaction 1
    events = [ev(f"k{i}", f"c{i}") for i in range(1, 121)]
    with pytest.raises(StoreError, match="ConnectionClosedError"):
        await store.append("s", events)  # part 1 commits (transaction 2); part 2 dies
    stored = await store.read("s")
    assert [(e.seq, e.key) for e in stored] == [(i + 1, f"k{i}") for i in range(50)]
    assert await store.checkpoint("s") == "c0"  # only ever moved with a last part
    failing.fail_on = None
    assert await store.append("s", events) == AppendResult(new=71, duplicates=49, last_seq=121)
    stored = await store.read("s", 0, 1000)
    assert [(e.seq, e.key) for e in stored] == [(i + 1, f"k{i}") for i in range(121)]
    assert await store.checkpoint("s") == "c120"
    await store.close()


async def test_an_item_over_400_kb_is_quarantined_with_the_reason(store: DynamoDBStore) -> None:
    big = ev("big", "c-big", size=410 * 1024)
    result = await store.append("s", [ev("a", "c-a"), big, ev("b")])
    assert result == AppendResult(new=2, duplicates=0, last_seq=2)
    assert [e.key for e in await store.read("s")] == ["a", "b"]
    assert await store.checkpoint("s") == "c-a"
    (q,) = await store.read_quarantine("s")
    assert q.reason.startswith("event 'big' too large for a DynamoDB item: ")
    assert q.reason.endswith(" bytes > 409600 (first 65536 bytes kept)")
    assert q.raw == b"x" * 65536


async def test_keys_longer_than_a_sort_key_allows_are_still_idempotent(
    store: DynamoDBStore,
) -> None:
    long_key = "k" * 5000
    assert await store.append("s", [ev(long_key), ev("short")]) == AppendResult(2, 0, 2)
    assert await store.append("s", [ev(long_key)]) == AppendResult(0, 1, 2)
    assert [e.key for e in await store.read("s")] == [long_key, "short"]
    assert di.key_sk(long_key).startswith("#") and len(di.key_sk(long_key)) == 65
    assert di.key_sk("") == "="



# -- through a proxy that throttles and cancels like DynamoDB under load ---------------------


async def test_appends_survive_throttling_and_conflicts_exactly(
    moto_endpoint: str,
    prefix: str,
) -> None:
    """A fifth of the transactions and reads throttled, a third of the transactions cancelled
    for a conflict, two appenders racing on one stream with overlapping keys: every key stored
    once, seqs gapless (botocore's retries and the store's own)."""
    async with DynamoDBFaultProxy(moto_endpoint, seed=3) as proxy:
        store = DynamoDBStore(
            prefix, endpoint_url=proxy.url, region="us-east-1", create_tables=True
        )
        await store.open()
        proxy.throttle_ops = frozenset({"TransactWriteItems", "GetItem"})
        proxy.throttle, proxy.conflict = 0.2, 0.35

        async def appender(offset: int) -> None:
            for i in range(0, 200, 50):  # batches of 50: two transaction parts each
                keys = range(i + offset, i + offset + 50)
                await store.append("s", [ev(f"k{j:04}", f"c{j:04}") for j in keys])

        await asyncio.gather(appender(0), appender(25))
        proxy.throttle = proxy.conflict = 0.0
        stored = await store.read("s", 0, 1000)
        await store.close()
    assert [e.seq for e in stored] == list(range(1, 226))
    assert sorted(e.key for e in stored) == [f"k{j:04}" for j in range(225)]
    assert proxy.injected["TransactionConflict"] >= 1
    throttles = proxy.injected["ProvisionedThroughputExceededException"]
    assert throttles + proxy.injected["ThrottlingException"] >= 2


async def test_a_refusal_is_a_permanent_store_error(moto_endpoint: str, prefix: str) -> None:
    async with DynamoDBFaultProxy(moto_endpoint) as proxy:
        store = DynamoDBStore(
            prefix, endpoint_url=proxy.url, region="us-east-1", create_tables=True
        )
        await store.open()
        proxy.deny = "AccessDeniedException"
        with pytest.raises(StoreError, match="AccessDeniedException: User: arn") as info:
            await store.append("s", [ev("a", "c-a")])
        await store.close()
    assert info.value.permanent
    assert proxy.injected == {"AccessDeniedException": 1}  # not retried: it would not help


# -- without a server: throttling, write units, parts, URLs ---------------------------------


class FakeDynamoDB:
    """Just enough of a DynamoDB client for one stream's appends, with scripted errors."""

    def __init__(self, errors: list[dict[str, Any]] | None = None) -> None:
        self.errors = list(errors or [])
        self.calls: list[str] = []
        self.last_seq = 0

    def describe_table(self, **kwargs: Any) -> dict[str, Any]:
        return {"Table": {"TableName": kwargs["TableName"]}}

    def get_item(self, **kwargs: Any) -> dict[str, Any]:
        return {"Item": {"last_seq": {"N": str(self.last_seq)}}} if self.last_seq else {}

    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("transact")
        if self.errors:
            raise ClientError(self.errors.pop(0), "TransactWriteItems")
        update = kwargs["TransactItems"][-1]["Update"]
        self.last_seq = int(update["ExpressionAttributeValues"][":l"]["N"])
        return {}


def throttled(code: str, reasons: list[str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"Error": {"Code": code, "Message": "slow down"}}
    if reasons is not None:
        error["CancellationReasons"] = [{"Code": r} for r in reasons]
    return error


async def _fake_store(fake: FakeDynamoDB, attempts: int = 10) -> DynamoDBStore:
    store = DynamoDBStore("fake", client=fake, max_attempts=attempts, backoff=(0.001, 0.002))
    await store.open()
    return store


async def test_throttling_and_transaction_conflicts_are_retried() -> None:
    fake = FakeDynamoDB(
        [
            throttled("ProvisionedThroughputExceededException"),
            throttled("TransactionCanceledException", ["None", "TransactionConflict", "None"]),
            throttled("ThrottlingException"),
        ]
    )
    store = await _fake_store(fake)
    assert await store.append("s", [ev("a")]) == AppendResult(1, 0, 1)
    assert fake.calls == ["transact"] * 4
    await store.close()


async def test_retries_give_up_with_a_store_error() -> None:
    fake = FakeDynamoDB([throttled("ThrottlingException")] * 3)
    store = await _fake_store(fake, attempts=3)
    with pytest.raises(StoreError, match="transact_write_items failed: ThrottlingException"):
        await store.append("s", [ev("a")])
    assert fake.calls == ["transact"] * 3
    denied = FakeDynamoDB([throttled("AccessDeniedException")])
    store = await _fake_store(denied)
    with pytest.raises(StoreError, match="AccessDeniedException: slow down"):
        await store.append("s", [ev("a")])
    assert denied.calls == ["transact"]


async def test_write_units_per_1000_events_of_200_bytes() -> None:
    """The cost driver in docs/stores.md: two items per event, written transactionally (2 WRU
    each under 1 KB), plus the stream's item once per transaction of at most 49 events."""
    store = await _fake_store(FakeDynamoDB())
    for i in range(0, 1000, 100):  # the writer's batches
        await store.append("s", [ev(f"k{j}", f"c{j}") for j in range(i, i + 100)])
    assert store.write_units == 4000 + 10 * 3 * 2  # 3 transactions per batch of 100
    await store.close()


def test_parts_respect_the_100_item_and_4_mb_limits() -> None:
    small = [(ev(f"k{i}"), di.event_size("s", ev(f"k{i}"))) for i in range(120)]
    assert len(di.take_part("s", small)) == 49
    large = [(e, di.event_size("s", e)) for e in (ev(f"k{i}", size=150_000) for i in range(60))]
    part = di.take_part("s", large)
    assert len(part) == 26
    assert sum(size for _, size in part) < di.PART_BYTES
    assert len(di.take_part("s", large[:1])) == 1


def test_url_options() -> None:
    s = from_url("dynamodb://my-app.prod?region=ap-southeast-2&endpoint_url=http://127.0.0.1:9")
    assert (s.prefix, s.region, s.endpoint_url, s.create_tables) == (
        "my-app.prod",
        "ap-southeast-2",
        "http://127.0.0.1:9",
        False,
    )
    assert isinstance(open_store("dynamodb://app", create_tables=True), DynamoDBStore)
    with pytest.raises(StoreError, match="unknown DynamoDB store option"):
        from_url("dynamodb://app?table=x")
    with pytest.raises(StoreError, match="table prefix"):
        from_url("dynamodb://a?region=x")
    with pytest.raises(StoreError, match="looks like"):
        from_url("dynamodb://app/path")


# -- the command line ------------------------------------------------------------------------


def test_init_creates_the_tables_and_run_refuses_without_them(
    moto_endpoint: str,
    prefix: str,
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from longline.cli import main

    config = tmp_path / "dynamo.yaml"
    config.write_text(
        f"store: dynamodb://{prefix}?region=us-east-1&endpoint_url={moto_endpoint}\n"
        "streams:\n  - {name: demo, transport: sse, url: 'http://127.0.0.1:9/none'}\n"
    )
    refused = CliRunner().invoke(main, ["run", str(config), "--duration", "0.1"])
    assert refused.exit_code == 1
    assert f"DynamoDB table(s) missing: {prefix}_events" in refused.output
    assert "longline run --create-tables CONFIG" in refused.output
    created = CliRunner().invoke(main, ["init", str(config)])
    assert created.exit_code == 0, created.output
    assert f"store ready: created tables {prefix}_events, {prefix}_keys" in created.output
    again = CliRunner().invoke(main, ["init", str(config)])
    assert (again.exit_code, again.output) == (0, f"{config}: store ready: up to date\n")
