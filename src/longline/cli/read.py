"""``longline events``, ``tail`` and ``status``: read what the store holds, from any process,
without creating a store or needing stream and processor secrets."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click
import orjson

from longline.cli.common import fail, load_config_or_exit
from longline.config import Config

if TYPE_CHECKING:
    from longline.stores.base import EventLog

__all__ = ["events", "status", "tail_command"]


@click.command()
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
    cfg = load_config_or_exit(config, read_only=True)
    if stream not in {s.name for s in cfg.streams}:
        fail(f"--stream: no stream named {stream!r} in {config}", 2)
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


@click.command()
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

    cfg = load_config_or_exit(config, read_only=True)
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


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--stream", "streams", multiple=True, help="Only this stream (repeat for several).")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=None,
    help="Start after this seq in every stream (0: from the first event).",
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Without --after: start with the last N events of each stream.",
)
@click.option("-f", "--follow", "live", is_flag=True, help="Keep printing events as they commit.")
def tail_command(
    config: str, streams: tuple[str, ...], after: int | None, lines: int, live: bool
) -> None:
    """Print the events of CONFIG's streams as NDJSON (the shape of `events`, plus `stream`),
    in seq order per stream; with --follow, keep printing them as they are committed, until
    Ctrl-C."""
    from longline.ops.tail import run_until_interrupted, tail

    cfg = load_config_or_exit(config, read_only=True)
    known = [s.name for s in cfg.streams]
    for name in streams:
        if name not in known:
            fail(f"--stream: no stream named {name!r} in {config}", 2)
    chosen = list(dict.fromkeys(streams)) if streams else known
    run_until_interrupted(tail(cfg, chosen, after, lines, live))
