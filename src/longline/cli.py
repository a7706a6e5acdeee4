"""The ``longline`` command line: run, check, events, tail, status, provider, demo, cost."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson

from longline.cli_options import (
    DURATION,
    Duration,
    log_format_option,
    log_json,
    log_level_of,
    log_level_option,
)
from longline.config import Config, ConfigError, load_config
from longline.ops.logging import setup_logging

if TYPE_CHECKING:
    from longline.ops.listen import Listen
    from longline.stores.base import EventLog


def _load(path: str, *, read_only: bool = False) -> Config:
    """Load a config or exit 2 with the field-named errors (no traceback). ``read_only``: for
    commands that only read the store, which need no stream or processor credentials.

    Also records ``path`` for :class:`_Main`'s error line.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj["config"] = path
    try:
        cfg = load_config(path, read_only=read_only)
    except ConfigError as e:
        _fail(f"{path}: invalid configuration:\n{e}", 2)
    except OSError as e:
        _fail(f"{path}: cannot read: {e.strerror}", 2)
    if cfg.store.lower().startswith("memory:"):
        # Fine from Python (tests, the API); from a command it would keep nothing.
        _fail(f"{path}: store: memory:// lives in one process; a command needs a real store", 2)
    return cfg


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def user_error(exc: BaseException) -> str | None:
    """The one line to print for an error the user can act on, or None for a bug.

    A store that cannot be opened or used (unreachable, missing directory, driver not
    installed) and a processor kind whose client library is missing are the user's to fix;
    anything else keeps its traceback.
    """
    from longline.extras import MissingExtra
    from longline.ops.listen import ListenError
    from longline.stores.base import StoreError

    if isinstance(exc, StoreError):
        return f"store: {exc}"
    if isinstance(exc, MissingExtra | ListenError):
        return str(exc)
    return None


def _listen(cfg: Config, path: str, flag: str | None) -> Listen | None:
    """The operators' listener ``--http`` or ``http.listen`` asks for; exit 2 when refused."""
    from longline.ops.listen import ListenError, listen_settings

    try:
        return listen_settings(cfg, flag)
    except ListenError as e:
        _fail(f"{path}: {e}", 2)


HTTP_OPTION = click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    default=None,
    help="Serve /metrics, /healthz, /readyz and the status page here (wins over http.listen).",
)


class _Main(click.Group):
    """The command group; every subcommand's actionable errors become one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as e:
            line = user_error(e)
            if line is None:
                raise
            where = ctx.obj.get("config") if isinstance(ctx.obj, dict) else None
            _fail(f"{where}: {line}" if where else line, 1)


@click.group(cls=_Main)
@click.version_option(package_name="longline")
@log_level_option(group=True)
@log_format_option(group=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep outbound event streams alive and store every event exactly once."""
    ctx.ensure_object(dict)  # _load records the config path here for _Main's error line


@main.command()
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
    cfg = _load(config)
    listen = _listen(cfg, config, http)
    setup_logging(log_level_of(ctx), secrets=cfg.secrets, json=log_json(ctx))

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
            _exit_now(code)
        return code

    try:
        code = asyncio.run(go())
    except StoreError as e:
        _fail(f"{config}: store: {e}", 1)
    sys.exit(code)


def _no_reload_in_worker_mode() -> None:
    logging.getLogger("longline.reload").warning(
        "SIGHUP ignored: worker mode does not reload its config; restart the worker"
    )


def _exit_now(code: int) -> NoReturn:
    """Exit without waiting for a store call stuck in a driver thread (it cannot be cancelled,
    and the interpreter would join its thread): what it held was counted as uncommitted."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
def init(config: str) -> None:
    """Create or migrate the store of CONFIG (DynamoDB tables, PostgreSQL schema), then exit."""
    from longline.stores import StoreError, open_store

    cfg = _load(config)

    async def go() -> str:
        async with open_store(cfg.store, create_tables=True) as store:
            pass
        created = getattr(store, "created", None)
        return f"created tables {', '.join(created)}" if created else "up to date"

    try:
        click.echo(f"{config}: store ready: {asyncio.run(go())}")
    except StoreError as e:
        _fail(f"{config}: store: {e}", 1)


@main.command()
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
    from longline.ops.probe import connect_findings, offline_findings

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


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--stream", "stream", required=True, help="Stream name.")
@click.option(
    "--after",
    "after",
    type=int,
    default=0,
    show_default=True,
    help="Only events with seq greater than this.",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many.")
@click.option("--quarantined", is_flag=True, help="List quarantined items instead.")
def events(config: str, stream: str, after: int, limit: int | None, quarantined: bool) -> None:
    """Print stored events of a stream as NDJSON, in seq order."""
    cfg = _load(config, read_only=True)
    if stream not in {s.name for s in cfg.streams}:
        _fail(f"--stream: no stream named {stream!r} in {config}", 2)
    asyncio.run(_print_events(cfg, stream, after, limit, quarantined))


async def _print_events(
    cfg: Config, stream: str, after: int, limit: int | None, quarantined: bool
) -> None:
    from longline.stores import open_store

    async with open_store(cfg.store, create=False) as store:
        await _write_events(store, stream, after, limit, quarantined)


async def _write_events(
    store: EventLog, stream: str, after: int, limit: int | None, quarantined: bool
) -> None:
    from longline.ops.tail import event_record

    out = sys.stdout.buffer
    remaining = limit if limit is not None else -1
    try:
        while remaining != 0:
            page = 1000 if remaining < 0 else min(remaining, 1000)
            if quarantined:
                items = await store.read_quarantine(stream, after, page)
                for q in items:
                    out.write(
                        orjson.dumps(
                            {
                                "id": q.id,
                                "reason": q.reason,
                                "received_at": q.received_at,
                                "raw": q.raw.decode("utf-8", "replace"),
                            }
                        )
                        + b"\n"
                    )
                after = items[-1].id if items else after
            else:
                evs = await store.read(stream, after, page)
                for ev in evs:
                    out.write(orjson.dumps(event_record(ev)) + b"\n")
                items = evs  # type: ignore[assignment]
                after = evs[-1].seq if evs else after
            if remaining > 0:
                remaining -= len(items)
            if len(items) < page:
                break
    finally:
        out.flush()


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when any stream is failed, dead or stalled (for scripts and health checks).",
)
def status(config: str, as_json: bool, check: bool) -> None:
    """Show each stream's state and its totals over the store's life (while `run` runs, and
    after)."""
    from longline.ops.status import collect_status, problems, render_status

    cfg = _load(config, read_only=True)
    data = asyncio.run(collect_status(cfg))
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        render_status(data)
    if check:
        found = problems(data)
        for line in found:
            click.echo(line, err=True)
        sys.exit(1 if found else 0)


@main.command()
@click.option(
    "--duration",
    type=DURATION,
    default="20s",
    show_default=True,
    help="How long to capture (90, 90s, 5m).",
)
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False),
    default="longline-demo.db",
    show_default=True,
    help="SQLite file to capture into (replaced).",
)
def demo(duration: float, db: str) -> None:
    """Capture three misbehaving local streams and verify nothing was lost or doubled."""
    from longline.demo import run_demo

    setup_logging("ERROR")
    ok = asyncio.run(run_demo(Path(db), duration))
    sys.exit(0 if ok else 1)


def _register_optional() -> None:
    """Commands that live in their own modules."""
    from longline.cost.cli import cost_command
    from longline.testing.provider import provider_command

    main.add_command(provider_command, "provider")
    main.add_command(cost_command, "cost")
    from longline.aws.sim.lambda_sim import lambda_sim_command

    main.add_command(lambda_sim_command(), "lambda-sim")
    from longline.aws.deploy import deploy_command

    main.add_command(deploy_command, "deploy")
    from longline.engine import dispatch_cli

    main.add_command(dispatch_cli.dispatch_command, "dispatch")
    main.add_command(dispatch_cli.deadletters_command, "deadletters")
    main.add_command(dispatch_cli.replay_command, "replay")
    from longline.ops.tail import tail_command

    main.add_command(tail_command, "tail")
    for command in main.commands.values():  # --log-level and --log-format also after it
        if not any(p.name == "log_level" for p in command.params):
            log_level_option()(command)
        if not any(p.name == "log_format" for p in command.params):
            log_format_option()(command)


_register_optional()

if __name__ == "__main__":  # `python -m longline.cli` is the CLI too (as `python -m longline`)
    main()
