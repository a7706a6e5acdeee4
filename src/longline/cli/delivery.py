"""``longline dispatch``, ``longline deadletters`` and ``longline replay``.

Machine-readable results go to stdout as NDJSON;
summaries go to stderr; exit 1 when something could not be delivered, 2 for a bad request.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import orjson

from longline.api.status import Status
from longline.cli.common import fail, listen_of, load_config_or_exit
from longline.cli.options import DURATION, log_json, log_level_of
from longline.config import Config
from longline.delivery.redeliver import (
    Redelivered,
    RedeliveryError,
    all_dead_letters,
    replay,
    retry_dead_letters,
    settings_of,
)
from longline.engine.reload import Reloader
from longline.ops.logging import setup_logging
from longline.stores import open_store
from longline.stores.base import Outbox

__all__ = ["deadletters_command", "dispatch_command", "replay_command"]

T = TypeVar("T")
_CONFIG = click.argument("config", type=click.Path(dir_okay=False))


def _setup(ctx: click.Context, path: str, *, read_only: bool = False) -> Config:
    cfg = load_config_or_exit(path, read_only=read_only)
    setup_logging(log_level_of(ctx), secrets=cfg.secrets, json=log_json(ctx))
    if not cfg.processors:
        fail(f"{path}: no processors configured", 2)
    return cfg


def _with_store(cfg: Config, work: Callable[[Outbox], Awaitable[T]]) -> T:
    """Open the (existing) store, run ``work``, close; request errors exit 2 (store errors:
    the group in ``cli.group``)."""
    async def go() -> T:
        async with open_store(cfg.store, create=False) as store:
            return await work(store)

    try:
        return asyncio.run(go())
    except RedeliveryError as e:
        fail(str(e), 2)


def _report(result: Redelivered, what: str) -> None:
    out = sys.stdout.buffer
    for processor, stream, seq, error in result.failed:
        row = {"processor": processor, "stream": stream, "seq": seq, "error": error}
        out.write(orjson.dumps(row) + b"\n")
    out.flush()
    click.echo(f"{what}: {result.delivered} delivered, {len(result.failed)} failed", err=True)
    sys.exit(1 if result.failed else 0)


def _known(cfg: Config, processor: str) -> None:
    try:
        settings_of(cfg, processor)
    except RedeliveryError as e:
        fail(str(e), 2)


@click.command()
@_CONFIG
@click.option("--duration", type=DURATION, default=None, help="Stop after this long (90, 90s, 5m).")
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    default=None,
    help="Serve /metrics, /healthz, /readyz and the status page here (wins over http.listen).",
)
@click.pass_context
def dispatch_command(
    ctx: click.Context, config: str, duration: float | None, http: str | None
) -> None:
    """Deliver stored events to the processors of CONFIG, without capturing.

    Runs beside `longline run` (or on another machine sharing the store) until SIGINT/SIGTERM;
    SIGHUP re-reads CONFIG and starts, stops or restarts only the processors that changed.
    """
    from longline.api import App
    from longline.ops.http import app_service

    cfg = _setup(ctx, config)
    listen = listen_of(cfg, config, http)
    app = App.from_config(cfg)
    reloader = Reloader(config, app)  # SIGHUP and POST /api/reload
    services = [] if listen is None else [app_service(listen, reload=reloader.reload_line)]

    async def go() -> Status:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.stop)
        loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
        return await app.serve(duration, capture=False, services=services)

    status = asyncio.run(go())
    failed = sorted({p for (p, _), lane in status.lanes.items() if lane.state == "failed"})
    if failed:
        click.echo(f"processor(s) could not start: {', '.join(failed)}", err=True)
        sys.exit(1)


@click.command()
@_CONFIG
@click.option("--processor", "processor", default=None, help="Only this processor's.")
@click.option("--retry", "retry", is_flag=True, help="Re-deliver; drop those delivered.")
@click.pass_context
def deadletters_command(
    ctx: click.Context, config: str, processor: str | None, retry: bool
) -> None:
    """List the dead letters as NDJSON, or re-deliver them with --retry."""
    cfg = _setup(ctx, config, read_only=not retry)
    if processor is not None:
        _known(cfg, processor)
    if retry:
        _report(_with_store(cfg, lambda s: retry_dead_letters(cfg, s, processor)), "dead letters")

    async def listing(store: Outbox) -> list[dict[str, Any]]:
        return [
            {
                "id": d.id,
                "processor": d.processor,
                "stream": d.stream,
                "seq": d.seq,
                "key": d.key,
                "error": d.error,
                "attempts": d.attempts,
                "failed_at": d.failed_at,
            }
            for d in await all_dead_letters(store, processor)
        ]

    out = sys.stdout.buffer
    for row in _with_store(cfg, listing):
        out.write(orjson.dumps(row) + b"\n")
    out.flush()


@click.command()
@_CONFIG
@click.option("--processor", "processor", required=True, help="Processor name.")
@click.option("--stream", "stream", required=True, help="Stream name.")
@click.option("--from-seq", "from_seq", type=click.IntRange(min=1), required=True)
@click.option("--to-seq", "to_seq", type=click.IntRange(min=1), default=None)
@click.pass_context
def replay_command(
    ctx: click.Context,
    config: str,
    processor: str,
    stream: str,
    from_seq: int,
    to_seq: int | None,
) -> None:
    """Re-deliver stored events FROM..TO of a stream to a processor (its cursor stays put)."""
    if to_seq is not None and from_seq > to_seq:
        raise click.BadParameter(
            f"--from-seq {from_seq} is after --to-seq {to_seq}", param_hint="--from-seq/--to-seq"
        )
    cfg = _setup(ctx, config)
    result = _with_store(cfg, lambda s: replay(cfg, s, processor, stream, from_seq, to_seq))
    _report(result, f"replay of {stream} to {processor}")
