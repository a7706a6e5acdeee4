"""``longline run``, ``init`` and ``check``: capture a config's streams, prepare its store,
validate it (with ``--connect``: reach the store and every stream once)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from longline.cli.common import (
    HTTP_OPTION,
    exit_now,
    fail,
    listen_of,
    load_config_or_exit,
)
from longline.cli.options import DURATION, Duration, log_json, log_level_of
from longline.config import Config, ConfigError, load_config
from longline.ops.logging import setup_logging

__all__ = ["check", "init", "run"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--duration", type=DURATION, default=None, help="Stop after this long (90, 90s, 5m).")
@click.option(
    "--create-tables",
    is_flag=True,
    help="Create missing DynamoDB tables instead of refusing to start.",
)
@click.option(
    "--worker",
    is_flag=True,
    help="Share the store with other workers: capture only the streams whose lease this holds.",
)
@click.option("--worker-id", default=None, help="With --worker: its name (default HOST:PID).")
@click.option(
    "--max-streams",
    type=click.IntRange(min=1),
    default=None,
    help="With --worker: hold at most this many streams (default: no cap).",
)
@click.option(
    "--lease-ttl",
    type=Duration(minimum=0.3),
    default=None,
    help="With --worker: how long a lease outlives a dead worker (default 15s).",
)
@HTTP_OPTION
@click.pass_context
def run(
    ctx: click.Context,
    config: str,
    duration: float | None,
    create_tables: bool,
    worker: bool,
    worker_id: str | None,
    max_streams: int | None,
    lease_ttl: float | None,
    http: str | None,
) -> None:
    """Capture every stream of CONFIG (with --worker: the streams it leases) until
    SIGINT/SIGTERM (or --duration). SIGHUP re-reads CONFIG: only the streams that changed
    reconnect.

    Exit status: 0 when every stream ran until the stop and all it received is committed;
    1 when a stream failed, items were left uncommitted, or the store could not be opened;
    2 for an invalid config or command line."""
    from longline.api import App
    from longline.engine.outcome import exit_code, final_line
    from longline.engine.reload import Reloader
    from longline.engine.runner import Runner
    from longline.engine.workers import DEFAULT_LEASE_TTL, Worker
    from longline.stores import StoreError, open_store

    if not worker and (worker_id, max_streams, lease_ttl) != (None, None, None):
        raise click.UsageError("--worker-id, --max-streams and --lease-ttl need --worker")
    ttl = DEFAULT_LEASE_TTL if lease_ttl is None else lease_ttl
    cfg = load_config_or_exit(config)
    listen = listen_of(cfg, config, http)
    setup_logging(log_level_of(ctx), secrets=cfg.secrets, json=log_json(ctx))
    max_streams = _fit_file_limit(config, cfg, worker, max_streams)

    async def go() -> int:
        loop = asyncio.get_running_loop()
        if worker:  # capture only: processors are left to one `longline dispatch`
            store = open_store(cfg.store, create_tables=create_tables)
            proc = Worker(
                cfg, store=store, worker_id=worker_id, max_streams=max_streams, lease_ttl=ttl
            )
            if listen is not None:
                from longline.ops.http import runner_service

                proc.runner.services.append(runner_service(listen))
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, proc.stop)
            loop.add_signal_handler(signal.SIGHUP, _no_reload_in_worker_mode)
            await proc.run(duration=duration)
            return finish(proc.runner)
        app = App.from_config(cfg, create_tables=create_tables)  # capture + its processors
        reloader = Reloader(config, app)  # SIGHUP and POST /api/reload (engine/reload.py)
        services = []
        if listen is not None:
            from longline.ops.http import app_service

            services.append(app_service(listen, reload=reloader.reload_line))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.stop)
        loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
        await app.serve(duration, services=services)
        assert app.runner is not None
        return finish(app.runner)

    def finish(runner: Runner) -> int:
        stats = runner.stats
        code = exit_code(stats)
        line = final_line(stats)
        if line is not None:
            logging.getLogger("longline.run").error("%s", line)
        if not runner.closed_cleanly:
            exit_now(code)
        return code

    try:
        code = asyncio.run(go())
    except StoreError as e:
        fail(f"{config}: store: {e}", 1)
    sys.exit(code)



def _no_reload_in_worker_mode() -> None:
    logging.getLogger("longline.reload").warning(
        "SIGHUP ignored: worker mode does not reload its config; restart the worker"
    )


def _fit_file_limit(path: str, cfg: Config, worker: bool, max_streams: int | None) -> int | None:
    """Raise the open-file limit; refuse (exit 1) a config that cannot fit under it, or cap a
    worker at what fits. Returns the worker's ``max_streams``."""
    from longline.ops.limits import FileLimit, check_file_limit, raise_file_limit, streams_that_fit

    soft, hard = raise_file_limit()
    if not worker:
        try:
            check_file_limit(cfg.streams, soft, hard)
        except FileLimit as e:
            fail(f"{path}: {e}", 1)
        return max_streams
    fit = streams_that_fit(cfg.streams, soft)
    if fit < 1:
        fail(f"{path}: the open-file limit {soft} leaves no room for a single stream", 1)
    if fit < min(max_streams or len(cfg.streams), len(cfg.streams)):
        logging.getLogger("longline.run").warning(
            "the open-file limit %d fits %d streams: this worker holds at most %d", soft, fit, fit
        )
        return fit
    return max_streams

@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
def init(config: str) -> None:
    """Create or migrate the store of CONFIG (DynamoDB tables, PostgreSQL schema), then exit."""
    from longline.stores import StoreError, open_store

    cfg = load_config_or_exit(config)

    async def go() -> str:
        async with open_store(cfg.store, create_tables=True) as store:
            pass
        created = getattr(store, "created", None)
        return f"created tables {', '.join(created)}" if created else "up to date"

    try:
        click.echo(f"{config}: store ready: {asyncio.run(go())}")
    except StoreError as e:
        fail(f"{config}: store: {e}", 1)


@click.command()
@click.argument("configs", metavar="CONFIG...", nargs=-1, required=True)
@click.option(
    "--connect",
    is_flag=True,
    help="Also open the store and connect once to every stream (handshake only).",
)
def check(configs: tuple[str, ...], connect: bool) -> None:
    """Validate each CONFIG (`-` reads standard input): exit 0 when all are fine, 2 when one is
    invalid, 1 when one needs a package that is not installed or (with --connect) cannot
    reach its store or a stream."""
    code = 0
    for path in configs:
        code = max(code, _check_one(path, connect))
    sys.exit(code)


def _check_one(path: str, connect: bool) -> int:
    """Print what ``check`` found in one config; return its exit code."""
    from longline.config import loads_config
    from longline.engine.probe import connect_findings, offline_findings

    try:
        cfg = loads_config(sys.stdin.read(), "-") if path == "-" else load_config(path)
    except ConfigError as e:
        click.echo(f"{path}: invalid configuration:\n{e}", err=True)
        return 2
    names = ", ".join(f"{s.name} ({s.transport})" for s in cfg.streams)
    problems = offline_findings(cfg)
    if not problems:
        click.echo(f"{path}: ok: {len(cfg.streams)} stream(s): {names}")
    if connect:  # its store line replaces the offline one; then processors, then streams
        store, *streams = asyncio.run(connect_findings(cfg))
        problems = [store, *(f for f in problems if f.what != "store"), *streams]
    for f in problems:
        click.echo(f"{path}: {f.line()}")
    return 1 if any(f.problem is not None for f in problems) else 0
