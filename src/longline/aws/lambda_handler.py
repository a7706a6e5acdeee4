"""AWS Lambda entry point: capture until the deadline, then hand over make-before-break.

Each invocation takes every stream's lease with the next epoch, runs the same engine as
``longline run``, and, when its remaining time falls under the margin, starts its successor
(self-chained mode; under Step Functions the state machine starts it). The successor connects
while this invocation still holds its connections; the store refuses this invocation's
checkpoint writes from then on (epoch fencing) but still inserts its events, which the key
deduplicates. This invocation stops once the successor has committed events, or a bounded
overlap passed, and flushes before the platform would kill it.

Settings come from the environment: ``LONGLINE_CONFIG`` (a path, or the YAML or JSON itself),
``LONGLINE_MODE`` (``self`` | ``stepfunctions``), ``LONGLINE_MARGIN`` (seconds, default 60),
``LONGLINE_LEASE_TTL`` (seconds, default 30), ``LONGLINE_MAX_OVERLAP`` (default 20).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from longline.config import Config, load_config
from longline.core.handoff import InvocationPlan, Step
from longline.engine.leases import LeaseKeeper
from longline.engine.runner import Runner
from longline.stores import open_store

log = logging.getLogger(__name__)

Invoker = Callable[[dict[str, Any]], Awaitable[None]]


class LambdaContext(Protocol):
    """The part of the Lambda context object longline uses."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Settings:
    """How an invocation hands over."""

    mode: str = "self"
    margin: float = 60.0
    lease_ttl: float = 30.0
    max_overlap: float = 20.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        mode = e.get("LONGLINE_MODE", "self")
        if mode not in ("self", "stepfunctions"):
            raise ValueError(f"LONGLINE_MODE must be self or stepfunctions, not {mode!r}")
        return cls(
            mode=mode,
            margin=float(e.get("LONGLINE_MARGIN", "60")),
            lease_ttl=float(e.get("LONGLINE_LEASE_TTL", "30")),
            max_overlap=float(e.get("LONGLINE_MAX_OVERLAP", "20")),
        )


def load_from_env() -> Config:
    """The config named (or held) by ``LONGLINE_CONFIG``."""
    value = os.environ.get("LONGLINE_CONFIG", "longline.yaml")
    if "\n" in value or value.lstrip().startswith(("store:", "streams:", "{")):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(value)
        try:
            return load_config(f.name)
        finally:
            Path(f.name).unlink(missing_ok=True)
    return load_config(value)


async def leases_healthy(cfg: Config) -> bool:
    """True when every stream has an unexpired lease (the watchdog then does nothing)."""
    async with open_store(cfg.store) as store:
        now = time.time()
        for s in cfg.streams:
            lease = await store.get_lease(s.name)
            if lease is None or lease.expires_at <= now:
                return False
        return True


async def run_invocation(
    cfg: Config,
    context: LambdaContext,
    settings: Settings,
    invoke_successor: Invoker | None,
    *,
    watchdog: bool = False,
) -> dict[str, Any]:
    """Capture until handed over; returns a summary (what the Lambda returns)."""
    if watchdog and await leases_healthy(cfg):
        return {"started": False, "reason": "every lease is held"}
    owner = getattr(context, "aws_request_id", "") or uuid.uuid4().hex
    store = open_store(cfg.store)
    await store.open()
    leases = {
        s.name: await store.take_lease(s.name, owner, settings.lease_ttl) for s in cfg.streams
    }
    epochs = {name: lease.epoch for name, lease in leases.items()}
    log.info("invocation %s took leases %s", owner, epochs)
    # Capture only: processing belongs to the function on the events table's stream
    # (stream_processor); overlapping invocations must not deliver the same events twice.
    runner = Runner(cfg, store=store)
    plan = InvocationPlan(
        margin=settings.margin,
        # Time kept to flush and close before the platform kills the process.
        flush_reserve=min(5.0, max(1.5, settings.margin / 3)),
        max_overlap=settings.max_overlap,
        chains=settings.mode == "self",
    )
    loop = asyncio.get_running_loop()
    outcome = "deadline"
    async with runner.opened():
        tasks = [runner.start_stream(s, leases[s.name].epoch) for s in cfg.streams]
        keepers = []
        for name, lease in leases.items():
            keeper = LeaseKeeper(store, lease, settings.lease_ttl, runner.writers[name])
            keeper.start()
            keepers.append(keeper)
        try:
            while not all(t.done() for t in tasks):
                remaining = context.get_remaining_time_in_millis() / 1000
                superseded = all(k.superseded for k in keepers)
                live = all(k.successor_live for k in keepers)
                step = plan.decide(loop.time(), remaining, superseded, live)
                if step is Step.STOP:
                    outcome = (
                        "handed-over"
                        if superseded and live
                        else ("superseded" if superseded else "deadline")
                    )
                    break
                if step is Step.START_SUCCESSOR and invoke_successor is not None:
                    log.info("invocation %s: %.1fs left, starting successor", owner, remaining)
                    await invoke_successor({"predecessor": owner})
                await asyncio.sleep(0.05)
        finally:
            for keeper in keepers:
                await keeper.stop()
            await runner.shutdown()
    stats = runner.stats
    return {
        "started": True,
        "owner": owner,
        "epochs": epochs,
        "outcome": outcome,
        "events": {n: s.events for n, s in stats.items()},
        "duplicates": {n: s.duplicates for n, s in stats.items()},
    }


def _boto3_invoker(context: Any) -> Invoker:
    """Invoke this same function asynchronously (InvocationType=Event)."""
    import boto3

    client = boto3.client("lambda")
    arn = context.invoked_function_arn

    async def invoke(payload: dict[str, Any]) -> None:
        await asyncio.to_thread(
            client.invoke, FunctionName=arn, InvocationType="Event", Payload=orjson.dumps(payload)
        )

    return invoke


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """The Lambda handler (``longline.aws.lambda_handler.handler``)."""
    from longline.ops.logging import setup_logging

    cfg = load_from_env()
    settings = Settings.from_env()
    setup_logging(os.environ.get("LONGLINE_LOG_LEVEL", "INFO"), secrets=cfg.secrets)
    invoker = _boto3_invoker(context) if settings.mode == "self" else None
    watchdog = bool((event or {}).get("watchdog"))
    return asyncio.run(run_invocation(cfg, context, settings, invoker, watchdog=watchdog))
