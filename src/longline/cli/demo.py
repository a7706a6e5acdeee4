"""``longline demo``: three misbehaving local feeds captured, then verified.

The local provider serves one feed per transport with faults switched on (cuts in the middle
of an event, disconnects, a stall with the socket left open, 503 and 429 with ``Retry-After``,
forced closes after a lifetime, malformed messages). longline captures them into a fresh SQLite
file; at the end every stored payload is compared byte for byte with what the provider sent.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from longline.cli.options import DURATION
from longline.config import Config, parse_config
from longline.engine.runner import Runner
from longline.ops.logging import setup_logging
from longline.stores import open_store
from longline.testing.provider import Provider, event_bytes

RATE = 250  # events per second per feed


@dataclass
class Verdict:
    """What the verification found for one stream."""

    stream: str
    sent: int
    stored: int
    duplicates: int
    quarantined: int
    gaps: int
    doubled: int
    mismatched: int

    @property
    def ok(self) -> bool:
        return self.gaps == 0 and self.doubled == 0 and self.mismatched == 0


def demo_config(provider: Provider, db: Path, total: int) -> Config:
    """Three streams, one per transport, each with its own set of faults."""
    # since=0: a feed's first connection starts at event 1 even if a refused or cut attempt
    # already started the provider's clock; later connections resume from the checkpoint.
    common = {"rate": RATE, "total": total, "since": 0}
    data: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "writer": {"batch_max": 500, "batch_window": "20ms"},
        "streams": [
            {
                "name": "sse",
                "transport": "sse",
                "key": "$.id",
                "url": provider.url(
                    "sse",
                    "wiki",
                    cut_every=700,
                    fail_first=1,
                    fail_status=503,
                    retry_after=1,
                    malformed_every=900,
                    **common,
                ),
                "stall_timeout": "3s",
                "backoff": {"initial": "100ms", "max": "2s"},
            },
            {
                "name": "ws",
                "transport": "ws",
                "key": "$.id",
                "cursor": "$.id",
                "url": provider.url(
                    "ws", "trades", subscribe=1, lifetime=6, malformed_every=1000, **common
                ),
                "subscribe": ['{"op":"subscribe","since":"{cursor}"}'],
                "resume": {"subscribe": True},
                "max_lifetime": "4s",
                "stall_timeout": "3s",
                "backoff": {"initial": "100ms", "max": "2s"},
            },
            {
                "name": "lines",
                "transport": "lines",
                "key": "$.id",
                "cursor": "$.id",
                "url": provider.url(
                    "lines",
                    "sensors",
                    stall_after=1500,
                    fail_first=1,
                    fail_status=429,
                    retry_after=1,
                    malformed_every=800,
                    **common,
                ),
                "resume": {"query": "since"},
                "stall_timeout": "2s",
                "backoff": {"initial": "100ms", "max": "2s"},
            },
        ],
    }
    return parse_config(data)


FEEDS = {"sse": "wiki", "ws": "trades", "lines": "sensors"}


async def verify(cfg: Config, provider: Provider) -> list[Verdict]:
    """Compare the stored events of every stream with what the provider sent."""
    verdicts = []
    async with open_store(cfg.store) as store:
        for s in cfg.streams:
            feed = FEEDS[s.name]
            ids: list[int] = []
            mismatched = 0
            after = 0
            while batch := await store.read(s.name, after, 5000):
                for ev in batch:
                    n = int(orjson.loads(ev.payload)["id"])
                    ids.append(n)
                    if ev.payload.encode() != event_bytes(feed, n):
                        mismatched += 1
                after = batch[-1].seq
            sent = provider.stats[feed].max_id_sent if feed in provider.stats else 0
            unique = set(ids)
            gaps = len(set(range(1, sent + 1)) - unique)
            quarantined = len(await store.read_quarantine(s.name, 0, 100_000))
            verdicts.append(
                Verdict(
                    s.name, sent, len(ids), 0, quarantined, gaps, len(ids) - len(unique), mismatched
                )
            )
    return verdicts


def _table(runner: Runner, rates: dict[str, float], elapsed: float) -> Table:
    table = Table(title=f"longline demo — {elapsed:4.1f}s (faults injected by the provider)")
    for col in ("stream", "state", "events", "ev/s", "dups", "quar.", "reconn.", "rotated"):
        table.add_column(col, justify="right" if col != "stream" else "left")
    for name, st in runner.stats.items():
        table.add_row(
            name,
            st.state,
            str(st.events),
            f"{rates.get(name, 0):.0f}",
            str(st.duplicates),
            str(st.quarantined),
            str(st.reconnects),
            str(st.rotations),
        )
    return table


async def run_demo(db: Path, duration: float, console: Console | None = None) -> bool:
    """Run the demo; True when every stream verified with no gap and nothing doubled."""
    console = console or Console()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    provider = Provider()
    await provider.start()
    total = int(RATE * max(duration - 6.0, duration * 0.5))
    cfg = demo_config(provider, db, total)
    runner = Runner(cfg, status_interval=0.5)
    started = time.monotonic()
    last: dict[str, int] = {}
    rates: dict[str, float] = {}

    console.print(
        "Provider faults: [b]sse[/b] cut mid-event every 700 events, one 503 + Retry-After, "
        "malformed JSON every 900; [b]ws[/b] forced close after 6 s (longline rotates "
        "make-before-break at 4 s), malformed JSON every 1000; [b]lines[/b] stall with the "
        "socket open every 1500 events, one 429 + Retry-After, malformed JSON every 800."
    )
    with Live(console=console, refresh_per_second=4, transient=False) as live:

        def tick(r: Runner) -> None:
            for name, st in r.stats.items():
                rates[name] = (st.events - last.get(name, 0)) / r.status_interval
                last[name] = st.events
            live.update(_table(r, rates, time.monotonic() - started))
            if all(st.events >= total for st in r.stats.values()):
                r.stop()

        try:
            stats = await runner.run(duration=duration, on_tick=tick)
        finally:
            await provider.stop()
    if not console.is_terminal:
        console.line()  # the last frame of a non-terminal Live ends without a newline
    verdicts = await verify(cfg, provider)
    for v in verdicts:
        v.duplicates = stats[v.stream].duplicates
    ok = all(v.ok for v in verdicts)
    for v in verdicts:
        console.print(
            f"  {v.stream:5} sent {v.sent} stored {v.stored} dups dropped {v.duplicates} "
            f"quarantined {v.quarantined} gaps {v.gaps} doubled {v.doubled} "
            f"payload mismatches {v.mismatched}",
            soft_wrap=True,
        )
    sent = sum(v.sent for v in verdicts)
    stored = sum(v.stored for v in verdicts)
    word = "[green]verified[/green]" if ok else "[red]FAILED[/red]"
    console.print(
        f"{word}: {len(verdicts)} streams, {sent} events sent, {stored} stored, "
        f"{sum(v.duplicates for v in verdicts)} duplicates dropped, "
        f"{sum(v.quarantined for v in verdicts)} quarantined, "
        f"{sum(v.gaps for v in verdicts)} gaps, {sum(v.doubled for v in verdicts)} doubled "
        f"-> {db}",
        soft_wrap=True,
    )
    return ok


@click.command()
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
    setup_logging("ERROR")
    ok = asyncio.run(run_demo(Path(db), duration))
    sys.exit(0 if ok else 1)
