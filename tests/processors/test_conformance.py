"""The processor conformance suite (``longline.testing.conformance``) on every built-in kind,
each against its real sink: a file fed in-process (python) or by a program (command), a
loopback HTTP server (webhook), Redis and NATS on loopback, and moto for the AWS kinds. Faults
are real: the network kinds go through a TCP proxy that is cut, the file sinks refuse."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web

from longline.testing.conformance import sinks
from longline.testing.conformance.processors import (
    Delivered,
    ProcessorConformance,
    ProcessorHarness,
)
from tests.processors.bus_helpers import TcpProxy
from tests.services import AWS_TEST_ENV, service_missing

REDIS_URL = os.environ.get("LONGLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("LONGLINE_TEST_NATS", "nats://127.0.0.1:4222")


def _delivered(body: dict[str, Any]) -> Delivered:
    return Delivered(body["stream"], body["seq"], body["key"])


class FileHarness(ProcessorHarness):
    """A JSON-lines file as the sink; ``PATH.down`` makes it refuse."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    async def delivered(self) -> list[Delivered]:
        return sinks.read(self.path)

    async def down(self) -> None:
        Path(f"{self.path}.down").touch()

    async def up(self) -> None:
        Path(f"{self.path}.down").unlink(missing_ok=True)


class PythonHarness(FileHarness):
    def env(self) -> dict[str, str]:
        return {sinks.SINK_ENV: str(self.path)}

    def entry(self) -> dict[str, Any]:
        target = "longline.testing.conformance.sinks:to_file"
        return {"name": self.name, "kind": "python", "target": target}


class CommandHarness(FileHarness):
    def entry(self) -> dict[str, Any]:
        argv = [sys.executable, "-m", "longline.testing.conformance.sinks", str(self.path)]
        return {"name": self.name, "kind": "command", "argv": argv}


class TestPython(ProcessorConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PythonHarness:
        h = PythonHarness(tmp_path / "sink.jsonl")
        monkeypatch.setenv(sinks.SINK_ENV, str(h.path))
        return h


class TestCommand(ProcessorConformance):
    crash_events: ClassVar[int] = 60  # a process per batch
    crash_batch: ClassVar[int] = 5

    @pytest.fixture
    def harness(self, tmp_path: Path) -> CommandHarness:
        return CommandHarness(tmp_path / "sink.jsonl")


class WebhookHarness(ProcessorHarness):
    """A loopback HTTP receiver; ``down`` answers 503."""

    down_is_unavailable: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Delivered] = []
        self.is_down = False
        self.port = 0

    def entry(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/hook"
        return {"name": self.name, "kind": "webhook", "url": url, "timeout": "5s"}

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if self.is_down:
            return web.Response(status=503)
        self.got += [_delivered(e) for e in body["events"]]
        return web.Response(status=200)

    async def delivered(self) -> list[Delivered]:
        return list(self.got)

    async def down(self) -> None:
        self.is_down = True

    async def up(self) -> None:
        self.is_down = False


class TestWebhook(ProcessorConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[WebhookHarness]:
        h = WebhookHarness()
        app = web.Application()
        app.router.add_post("/hook", h.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        h.port = int(runner.addresses[0][1])
        try:
            yield h
        finally:
            await runner.cleanup()


class ProxiedHarness(ProcessorHarness):
    """A real server behind a TCP proxy: ``down`` cuts the proxy, ``up`` restores it."""

    down_is_unavailable: ClassVar[bool] = True

    def __init__(self, proxy: TcpProxy) -> None:
        super().__init__()
        self.proxy = proxy

    async def down(self) -> None:
        await self.proxy.cut()

    async def up(self) -> None:
        if self.proxy._server is None:
            await self.proxy.restore()


async def _proxy(port: int) -> TcpProxy:
    proxy = TcpProxy(port)
    await proxy.start()
    return proxy


class RedisHarness(ProxiedHarness):
    def __init__(self, proxy: TcpProxy, client: Any) -> None:
        super().__init__(proxy)
        self.client = client

    def entry(self) -> dict[str, Any]:
        url = f"redis://127.0.0.1:{self.proxy.port}/0"
        return {
            "name": self.name,
            "kind": "redis",
            "url": url,
            "stream_key": self.name + ":{stream}",
        }

    async def delivered(self) -> list[Delivered]:
        out = []
        for stream in ProcessorConformance.streams:
            for _, fields in await self.client.xrange(f"{self.name}:{stream}"):
                f = {k.decode(): v.decode() for k, v in fields.items()}
                out.append(Delivered(f["stream"], int(f["seq"]), f["key"]))
        return out


class TestRedis(ProcessorConformance):
    crash_events: ClassVar[int] = 1000  # reading back every entry on each poll is the slow part

    @pytest.fixture
    async def harness(self) -> AsyncIterator[RedisHarness]:
        redis_asyncio = pytest.importorskip("redis.asyncio")
        client = redis_asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            service_missing(f"Redis at {REDIS_URL} does not answer: {exc}")
        proxy = await _proxy(
            6379 if "6379" in REDIS_URL else int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
        )
        h = RedisHarness(proxy, client)
        try:
            yield h
        finally:
            await proxy.cut()
            keys = [k async for k in client.scan_iter(match=f"*{h.name}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()


class NatsHarness(ProxiedHarness):
    def __init__(self, proxy: TcpProxy, nc: Any) -> None:
        super().__init__(proxy)
        self.js = nc.jetstream()
        self.stream = "LLCONF_" + uuid.uuid4().hex[:10]

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "nats",
            "servers": [f"nats://127.0.0.1:{self.proxy.port}"],
            "subject": self.name + ".{stream}",
            "stream_name": self.stream,
            "create_stream": True,
        }

    async def delivered(self) -> list[Delivered]:
        try:
            info = await self.js.stream_info(self.stream)
        except Exception:
            return []  # not created yet
        if not info.state.messages:
            return []
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(self.stream, seq)
            out.append(_delivered(orjson.loads(msg.data)))
        return out


class TestNats(ProcessorConformance):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[NatsHarness]:
        nats = pytest.importorskip("nats")
        try:
            nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=1)
            await nc.jetstream().account_info()
        except Exception as exc:
            service_missing(f"NATS JetStream at {NATS_URL} does not answer: {exc}")
        proxy = await _proxy(int(NATS_URL.rsplit(":", 1)[1]))
        h = NatsHarness(proxy, nc)
        try:
            yield h
        finally:
            await proxy.cut()
            with contextlib.suppress(Exception):
                await h.js.delete_stream(h.stream)
            await nc.close()


# -- AWS kinds on moto ----------------------------------------------------------------------


class AwsHarness(ProxiedHarness):
    kind: ClassVar[str]

    def __init__(self, proxy: TcpProxy, endpoint: str) -> None:
        super().__init__(proxy)
        self.endpoint = endpoint
        self.got: list[Delivered] = []

    def env(self) -> dict[str, str]:
        return dict(AWS_TEST_ENV)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def base(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.proxy.port}"
        return {"name": self.name, "kind": self.kind, "region": "us-east-1", "endpoint_url": url}


class QueueHarness(AwsHarness):
    """Reads an SQS queue (the sink itself, or subscribed to the topic/bus under test)."""

    def __init__(self, proxy: TcpProxy, endpoint: str) -> None:
        super().__init__(proxy, endpoint)
        self.sqs = self.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attrs["Attributes"]["QueueArn"]

    def body(self, message: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(message["Body"])
        return body

    async def delivered(self) -> list[Delivered]:
        # boto3 blocks: off the loop, which also runs the proxy the processor talks through.
        return await asyncio.to_thread(self._drain)

    def _drain(self) -> list[Delivered]:
        for _ in range(20):  # bounded: a sink still being fed would keep a full drain going
            reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            msgs = reply.get("Messages", [])
            if not msgs:
                break
            self.got += [_delivered(self.body(m)) for m in msgs]
            handles = [m["ReceiptHandle"] for m in msgs]
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return list(self.got)


class SqsHarness(QueueHarness):
    kind = "sqs"

    def entry(self) -> dict[str, Any]:
        return {**self.base(), "queue_url": self.queue_url}


class SnsHarness(QueueHarness):
    kind = "sns"

    def __init__(self, proxy: TcpProxy, endpoint: str) -> None:
        super().__init__(proxy, endpoint)
        sns = self.client("sns")
        self.topic_arn = sns.create_topic(Name=self.name)["TopicArn"]
        sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=self.queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )

    def entry(self) -> dict[str, Any]:
        return {**self.base(), "topic_arn": self.topic_arn}


class EventBridgeHarness(QueueHarness):
    kind = "eventbridge"

    def __init__(self, proxy: TcpProxy, endpoint: str) -> None:
        super().__init__(proxy, endpoint)
        events = self.client("events")
        events.create_event_bus(Name=self.name)
        events.put_rule(
            Name=self.name,
            EventBusName=self.name,
            EventPattern=orjson.dumps({"source": [self.name]}).decode(),
        )
        events.put_targets(
            Rule=self.name, EventBusName=self.name, Targets=[{"Id": "q", "Arn": self.queue_arn}]
        )

    def entry(self) -> dict[str, Any]:
        return {**self.base(), "event_bus_name": self.name, "source": self.name}

    def body(self, message: dict[str, Any]) -> dict[str, Any]:
        detail: dict[str, Any] = orjson.loads(message["Body"])["detail"]
        return detail


class KinesisHarness(AwsHarness):
    kind = "kinesis"

    def __init__(self, proxy: TcpProxy, endpoint: str) -> None:
        super().__init__(proxy, endpoint)
        self.kinesis = self.client("kinesis")
        self.kinesis.create_stream(StreamName=self.name, ShardCount=1)
        shard = self.kinesis.describe_stream(StreamName=self.name)["StreamDescription"]["Shards"][0]
        self.iterator = self.kinesis.get_shard_iterator(
            StreamName=self.name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def entry(self) -> dict[str, Any]:
        return {**self.base(), "stream_name": self.name}

    async def delivered(self) -> list[Delivered]:
        return await asyncio.to_thread(self._read)  # boto3 blocks: off the loop (see above)

    def _read(self) -> list[Delivered]:
        for _ in range(20):  # bounded, as for SQS
            resp = self.kinesis.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = resp["NextShardIterator"]
            if not resp["Records"]:
                break
            self.got += [_delivered(orjson.loads(r["Data"])) for r in resp["Records"]]
        return list(self.got)


class AwsConformance(ProcessorConformance):
    crash_events: ClassVar[int] = 400  # moto serves one request at a time
    harness_class: ClassVar[type[AwsHarness]]

    @pytest.fixture
    async def harness(self, moto_endpoint: str) -> AsyncIterator[AwsHarness]:
        proxy = await _proxy(int(moto_endpoint.rsplit(":", 1)[1]))
        try:
            yield self.harness_class(proxy, moto_endpoint)
        finally:
            await proxy.cut()


class TestSqs(AwsConformance):
    harness_class = SqsHarness


class TestSns(AwsConformance):
    harness_class = SnsHarness


class TestEventBridge(AwsConformance):
    crash_events: ClassVar[int] = 100  # moto's rule-to-queue delivery is the slow part
    harness_class = EventBridgeHarness


class TestKinesis(AwsConformance):
    harness_class = KinesisHarness


def test_every_builtin_kind_runs_the_suite() -> None:
    from longline.processors.registry import REGISTRY

    kinds = {
        TestPython: "python",
        TestCommand: "command",
        TestWebhook: "webhook",
        TestRedis: "redis",
        TestNats: "nats",
        TestSqs: "sqs",
        TestSns: "sns",
        TestEventBridge: "eventbridge",
        TestKinesis: "kinesis",
    }
    assert sorted(kinds.values()) == sorted(REGISTRY.builtin_names())
    assert all(issubclass(c, ProcessorConformance) for c in kinds)
