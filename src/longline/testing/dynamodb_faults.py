"""A fault-injecting DynamoDB endpoint: forwards the JSON API to a real one (moto, DynamoDB
Local) and answers a share of the calls with the errors real DynamoDB sends under load.

moto never throttles and never cancels a transaction for a conflict, so code that must survive
those cannot be tested against it directly. Point the client (or a ``dynamodb://`` store URL's
``endpoint_url``) at this proxy instead:

    async with DynamoDBFaultProxy(moto_endpoint, throttle=0.2, conflict=0.2, seed=1) as proxy:
        url = f"dynamodb://prefix?region=us-east-1&endpoint_url={proxy.url}"
        ...
        proxy.injected   # Counter: ProvisionedThroughputExceededException 41, ...
        proxy.deny = "AccessDeniedException"   # from now on every call is refused

An injected error is answered *instead of* forwarding, as DynamoDB does: a throttled or
cancelled call changed nothing. The bodies are the ones botocore parses (``__type`` with the
namespace, ``message``/``Message``, ``CancellationReasons`` with one entry per transaction
item), with ``x-amzn-ErrorType``, ``x-amzn-RequestId`` and the ``x-amz-crc32`` of the body.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections import Counter
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

__all__ = ["ERRORS", "DynamoDBFaultProxy", "error_response"]

_NS = "com.amazonaws.dynamodb.v20120810"
# code -> (__type namespace, message key, message); what DynamoDB answers with HTTP 400.
ERRORS: dict[str, tuple[str, str, str]] = {
    "ProvisionedThroughputExceededException": (
        _NS,
        "message",
        "The level of configured provisioned throughput for the table was exceeded. Consider"
        " increasing your provisioning level with the UpdateTable API.",
    ),
    "ThrottlingException": (
        "com.amazon.coral.availability",
        "message",
        "Rate of requests exceeds the allowed throughput.",
    ),
    "AccessDeniedException": (
        "com.amazon.coral.service",
        "Message",
        "User: arn:aws:iam::123456789012:user/longline is not authorized to perform this"
        " operation because no identity-based policy allows it",
    ),
    "ResourceNotFoundException": (_NS, "message", "Requested resource not found"),
}
_THROTTLES = ("ProvisionedThroughputExceededException", "ThrottlingException")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


def error_response(code: str, body: dict[str, Any] | None = None) -> web.Response:
    """HTTP 400 with DynamoDB's error shape for ``code`` (one of ``ERRORS`` unless ``body``
    is given)."""
    if body is None:
        ns, key, message = ERRORS[code]
        body = {"__type": f"{ns}#{code}", key: message}
    data = orjson.dumps(body)
    return web.Response(
        status=400,
        body=data,
        content_type="application/x-amz-json-1.0",
        headers={
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/{_NS}/",
            "x-amzn-RequestId": uuid.uuid4().hex.upper(),
            "x-amz-crc32": str(zlib.crc32(data) & 0xFFFFFFFF),
        },
    )


def conflict_response(items: int, rng: random.Random) -> web.Response:
    """``TransactionCanceledException`` for a transaction of ``items`` items, one of them in
    conflict with another transaction (the others ``None``), as DynamoDB reports it."""
    hit = rng.randrange(max(items, 1))
    reasons: list[dict[str, str]] = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        if i == hit
        else {"Code": "None"}
        for i in range(max(items, 1))
    ]
    codes = ", ".join(r["Code"] for r in reasons)
    body = {
        "__type": f"{_NS}#TransactionCanceledException",
        "CancellationReasons": reasons,
        "Message": "Transaction cancelled, please refer cancellation reasons for specific"
        f" reasons [{codes}]",
    }
    return error_response("TransactionCanceledException", body)


class DynamoDBFaultProxy:
    """A loopback HTTP server in front of the DynamoDB endpoint ``upstream``.

    ``throttle``: the share of calls (of ``throttle_ops``, default all) answered with
    ``ProvisionedThroughputExceededException`` or ``ThrottlingException`` (half each).
    ``conflict``: the share of ``TransactWriteItems`` calls answered with a
    ``TransactionCanceledException`` whose reasons hold one ``TransactionConflict``.
    ``deny``: an error code of ``ERRORS`` answered to every call while set (a permanent fault).
    All three may be changed while the proxy runs. ``injected`` counts the errors sent by code,
    ``forwarded`` the calls passed on by operation.
    """

    def __init__(
        self,
        upstream: str,
        *,
        throttle: float = 0.0,
        conflict: float = 0.0,
        throttle_ops: frozenset[str] | None = None,
        deny: str | None = None,
        seed: int | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.throttle = throttle
        self.conflict = conflict
        self.throttle_ops = throttle_ops
        self.deny = deny
        self.host = host
        self.port = port
        self.injected: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` to use as the client's endpoint URL."""
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (``port`` is then the bound one)."""
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)  # a 4 MB transaction fits
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and close the upstream connections. Safe to call twice."""
        runner, self._runner = self._runner, None
        session, self._session = self._session, None
        if runner is not None:
            await runner.cleanup()
        if session is not None:
            await session.close()

    def _fault(self, op: str, body: bytes) -> web.Response | None:
        if self.deny is not None:
            self.injected[self.deny] += 1
            return error_response(self.deny)
        rng = self._rng
        ops = self.throttle_ops
        if self.throttle and (ops is None or op in ops) and rng.random() < self.throttle:
            code = rng.choice(_THROTTLES)
            self.injected[code] += 1
            return error_response(code)
        if op == "TransactWriteItems" and self.conflict and rng.random() < self.conflict:
            try:
                items = len(orjson.loads(body).get("TransactItems", []))
            except (orjson.JSONDecodeError, AttributeError):
                items = 1
            self.injected["TransactionConflict"] += 1
            return conflict_response(items, rng)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1]
        fault = self._fault(op, body)
        if fault is not None:
            return fault
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("Host", None)
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as up:
            data = await up.read()
            self.forwarded[op] += 1
            out = {k: v for k, v in up.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=up.status, body=data, headers=out)
