"""The DynamoDB client side of ``DynamoDBStore``: boto3 on a thread pool, retries, errors.

boto3 blocks, so every call runs on a small thread pool (boto3 clients are thread-safe) and
the event loop never waits on the network. Throttling (``ProvisionedThroughputExceeded``,
``ThrottlingException``, ``RequestLimitExceeded``) and transaction conflicts are retried here
with full-jitter backoff, on top of botocore's own retries of network errors and throttles
(safe for ``TransactWriteItems``: botocore sends an idempotency token). A failed condition
becomes :class:`~longline.stores.dynamodb.items.Cancelled`, which the callers handle; every
other error becomes :class:`~longline.stores.base.StoreError` (credentials never appear in
it), ``permanent`` for refusals such as ``AccessDeniedException`` that no retry can fix.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from longline.core.backoff import Backoff
from longline.stores.base import StoreError
from longline.stores.dynamodb import items as di
from longline.stores.dynamodb.schema import TABLES, create_request

__all__ = ["DynamoDBBase"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_RETRY_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)


# Refusals that retrying cannot fix until someone acts (IAM, credentials, a deleted table).
_PERMANENT_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "ResourceNotFoundException",
    }
)


class DynamoDBBase:
    """Tables, the client and the calls; the store's logic lives in its subclasses.

    ``create_tables`` lets ``open`` create missing tables; without it ``open`` refuses with a
    message saying how to create them. ``client`` replaces the boto3 client (tests).
    ``write_units`` counts the write request units spent (2 per KB written transactionally, 1
    per KB otherwise), the main cost driver of DynamoDB.
    """

    def __init__(
        self,
        prefix: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        create_tables: bool = False,
        client: Any = None,
        max_attempts: int = 10,
        backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        if not 3 <= len(prefix) <= 200 or not all(c.isalnum() or c in "_.-" for c in prefix):
            raise StoreError("a DynamoDB table prefix has 3-200 characters: letters, 0-9, _ . -")
        self.prefix = prefix
        self.region = region
        self.endpoint_url = endpoint_url
        self.create_tables = create_tables
        self.created: list[str] = []
        self.write_units = 0
        self._client = client
        self._given_client = client is not None
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._pool: ThreadPoolExecutor | None = None
        self._t = {spec.suffix: f"{prefix}_{spec.suffix}" for spec in TABLES}

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check (or with ``create_tables``, create) every table."""
        if self._pool is not None:
            return
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="longline-dynamodb")
        try:
            if not self._given_client:
                self._client = await self._run(self._make_client)
            await self._ensure_tables()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Release the thread pool. Safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)

    def _make_client(self) -> Any:
        config = BotoConfig(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=16,
        )
        return boto3.session.Session().client(
            "dynamodb", region_name=self.region, endpoint_url=self.endpoint_url, config=config
        )

    async def _ensure_tables(self) -> None:
        missing = []
        for spec in TABLES:
            try:
                await self._call("describe_table", TableName=self._t[spec.suffix])
            except _NotFound:
                missing.append(spec)
        if missing and not self.create_tables:
            names = ", ".join(self._t[s.suffix] for s in missing)
            raise StoreError(
                f"DynamoDB table(s) missing: {names}. Create them with `longline init CONFIG`"
                " or start with `longline run --create-tables CONFIG`"
            )
        for spec in missing:
            await self._call("create_table", **create_request(self.prefix, spec))
        for spec in missing:
            name = self._t[spec.suffix]
            waiter = self._client.get_waiter("table_exists")
            await self._run(waiter.wait, TableName=name, WaiterConfig={"Delay": 1})
            self.created.append(name)
            log.info("created DynamoDB table %s", name)

    # -- calls -------------------------------------------------------------------------

    async def _transact(self, items: list[dict[str, Any]]) -> None:
        await self._call("transact_write_items", TransactItems=items)
        self.write_units += di.transact_units(items)

    async def _get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        out = await self._call("get_item", TableName=self._t[table], Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = out.get("Item")
        return item

    async def _write(self, op: str, **kwargs: Any) -> dict[str, Any]:
        out = await self._call(op, **kwargs)
        self.write_units += 1
        return out

    async def _allocate(self, table: str, key: dict[str, Any], n: int) -> int:
        """Reserve ``n`` consecutive ids from a counter item; returns the first."""
        out = await self._write(
            "update_item",
            TableName=self._t[table],
            Key=key,
            UpdateExpression="ADD #n :n",
            ExpressionAttributeNames={"#n": "next"},
            ExpressionAttributeValues={":n": {"N": str(n)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(out["Attributes"]["next"]["N"]) - n + 1

    async def _batch_write(self, table: str, requests: list[dict[str, Any]]) -> None:
        for i in range(0, len(requests), 25):
            chunk: dict[str, Any] = {self._t[table]: requests[i : i + 25]}
            self.write_units += di.batch_units(requests[i : i + 25])
            backoff = Backoff(*self._backoff)
            while chunk:
                out = await self._call("batch_write_item", RequestItems=chunk)
                chunk = out.get("UnprocessedItems") or {}
                if chunk:
                    await asyncio.sleep(backoff.next_delay())

    async def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        limit = kwargs.get("Limit")
        while True:
            page = await self._call("query", ConsistentRead=True, **kwargs)
            items.extend(page["Items"])
            if not page.get("LastEvaluatedKey") or (limit and len(items) >= limit):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _scan(self, table: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = await self._call("scan", TableName=self._t[table], ConsistentRead=True, **kwargs)
            items.extend(page["Items"])
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call off the loop; throttles retried, errors made :class:`StoreError`."""
        backoff = Backoff(*self._backoff)
        while True:
            try:
                out: dict[str, Any] = await self._run(getattr(self._client, op), **kwargs)
                return out
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                reasons = [r.get("Code", "") for r in exc.response.get("CancellationReasons", [])]
                if code == "ResourceNotFoundException":
                    raise _NotFound(str(exc), permanent=True) from exc
                retry = code in _RETRY_CODES or bool(_RETRY_REASONS.intersection(reasons))
                if retry and backoff.attempt + 1 < self._max_attempts:
                    log.debug("DynamoDB %s throttled (%s); retrying", op, code)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if code == "ConditionalCheckFailedException" or (
                    code == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons
                ):
                    raise di.Cancelled(reasons) from exc
                detail = f" ({', '.join(reasons)})" if reasons else ""
                raise StoreError(
                    f"DynamoDB {op} failed: {code}{detail}: {_message(exc)}",
                    permanent=code in _PERMANENT_CODES,
                ) from exc
            except BotoCoreError as exc:
                raise StoreError(f"DynamoDB {op} failed: {type(exc).__name__}: {exc}") from exc

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            raise StoreError(f"DynamoDB store {self.prefix} is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))


class _NotFound(StoreError):
    """A table does not exist."""


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))
