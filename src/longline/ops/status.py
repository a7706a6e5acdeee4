"""``longline status``: the saved state of every stream, as JSON or a table.

The counters shown are the store's totals (kept by the store in the transactions that write
what they count), so they survive restarts; the running process's own figures are under
``run``. ``problems`` says which streams a health check (``status --check``) should fail on.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from longline.config import Config
from longline.core.model import Totals
from longline.stores import open_store
from longline.stores.base import DeliveryLog, LeaseTable, Outbox

# A running process saves status every second; older than this means it is not running.
STALE_AFTER = 10.0
DEAD_LETTER_COUNT_LIMIT = 10_000
COUNTERS = ("events", "duplicates", "quarantined", "reconnects")
# The figures of the process that saved the status (they restart at 0 with each run).
RUN_FIELDS = (*COUNTERS, "rotations", "connections", "started_at")
RUNNING = ("connecting", "live", "backing-off")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def collect_status(cfg: Config, store: Outbox | None = None) -> dict[str, Any]:
    """The status of every configured stream (from ``store`` when given and already open,
    as the HTTP listener's ``/api/status`` does, else from a store opened for this).

    Shape: ``{"streams": {NAME: {state, reason, events, duplicates, quarantined, reconnects,
    cursor, ..., run: {events, ...}}}, "processors": {...}}``: the top-level counters are the
    store's totals, ``run`` holds the last (or running) process's own. Opens an existing store
    only: a mistyped SQLite path is a ``StoreError``, not a new empty file.
    """
    if store is not None:
        return await _collect(cfg, store)
    async with open_store(cfg.store, create=False) as opened:
        return await _collect(cfg, opened)


async def _collect(cfg: Config, store: Outbox) -> dict[str, Any]:
    saved = await store.get_status()
    totals = await store.totals()
    # Worker mode: who holds each stream's lease now (a store without leases has none).
    leases = await store.leases() if isinstance(store, LeaseTable) else {}
    streams: dict[str, Any] = {}
    now = time.time()
    for s in cfg.streams:
        st = dict(saved.get(s.name) or {"state": "never-run"})
        if s.name not in saved and s.name in totals:  # killed before its first save
            st = {"state": "unknown", "reason": "the store holds data but no status"}
        if "state" in saved.get(s.name, {}):
            st["run"] = {k: st.pop(k) for k in RUN_FIELDS if k in st}
        total = totals.get(s.name, Totals())
        st.update({k: getattr(total, k) for k in COUNTERS})
        running = st.get("state") in RUNNING
        # A worker may run on another host: its pid means nothing here, only its age does.
        local = "worker" not in st
        if running and (
            now - float(st.get("updated_at", 0)) > STALE_AFTER
            or (local and not _alive(int(st.get("pid", 0))))
        ):
            st["state"], st["reason"] = "dead", "the process stopped without shutting down"
        elif running and st.get("state") != "live":
            down = st.get("down_since")
            if down is not None and now - float(down) > s.stall_timeout:
                st["stalled"] = True
        st["cursor"] = await store.checkpoint(s.name)
        if (lease := leases.get(s.name)) is not None:
            st["lease"] = {
                "owner": lease.owner,
                "epoch": lease.epoch,
                "expires_in": round(lease.expires_at - now, 3),
                "live": lease.live,
            }
        streams[s.name] = st
    return {"streams": streams, "processors": await _processors(cfg, store, streams)}


def problems(data: dict[str, Any]) -> list[str]:
    """One line per stream a health check should fail on: ``failed``, ``dead`` (its process
    ended without shutting down), or stalled (running but without a live connection for longer
    than its ``stall_timeout``)."""
    out = []
    for name, st in data["streams"].items():
        state = st.get("state")
        if state in ("failed", "dead") or st.get("stalled"):
            what = "stalled" if st.get("stalled") else state
            reason = st.get("reason")
            out.append(f"stream {name}: {what}" + (f": {reason}" if reason else ""))
    return out


async def _processors(
    cfg: Config, store: DeliveryLog, streams: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per processor and stream: the delivery cursor, how far it lags the stored events, and
    how many dead letters the processor has (counted up to ``DEAD_LETTER_COUNT_LIMIT``)."""
    out: dict[str, dict[str, Any]] = {}
    for p in cfg.processors:
        dead = len(await store.dead_letters(p.name, 0, DEAD_LETTER_COUNT_LIMIT))
        lanes = {}
        for name in p.streams or [s.name for s in cfg.streams]:
            cursor = await store.delivery_cursor(p.name, name)
            # seq is gapless from 1, so the events total is the last seq stored.
            last = int(streams.get(name, {}).get("events") or 0)
            lanes[name] = {"delivered_seq": cursor, "lag": max(0, last - cursor)}
        out[p.name] = {"streams": lanes, "dead_letters": dead}
    return out


def _owner(st: dict[str, Any]) -> str:
    """The lease holder and epoch (``expired`` when its worker stopped renewing), else the
    worker that saved the status."""
    lease = st.get("lease")
    if lease:
        expired = ", expired" if lease["expires_in"] <= 0 else ""
        return f"{lease['owner']} (epoch {lease['epoch']}{expired})"
    return f"{st['worker']} (epoch {st.get('epoch')})" if st.get("worker") else "-"


def render_status(data: dict[str, Any], console: Console | None = None) -> None:
    """Print the status as a table."""
    table = Table(title="longline status")
    for col in (
        "stream",
        "state",
        "owner",
        "events",
        "duplicates",
        "quarantined",
        "reconnects",
        "cursor",
        "last event",
        "reason",
    ):
        table.add_column(col, overflow="fold")
    now = time.time()
    for name, st in data["streams"].items():
        last = st.get("last_event_at")
        age = f"{now - last:.0f}s ago" if last else "-"
        owner = _owner(st)
        state = st.get("state", "?") + (" (stalled)" if st.get("stalled") else "")
        table.add_row(
            name,
            state,
            owner,
            str(st.get("events", 0)),
            str(st.get("duplicates", 0)),
            str(st.get("quarantined", 0)),
            str(st.get("reconnects", 0)),
            str(st.get("cursor") or "-"),
            age,
            str(st.get("reason") or ""),
        )
    console = console or Console()
    console.print(table)
    if data.get("processors"):
        lanes = Table(title="processors")
        for col in ("processor", "stream", "delivered up to seq", "lag", "dead letters"):
            lanes.add_column(col)
        for proc, info in data["processors"].items():
            for stream, lane in info["streams"].items():
                lanes.add_row(
                    proc,
                    stream,
                    str(lane["delivered_seq"]),
                    str(lane["lag"]),
                    str(info["dead_letters"]),
                )
        console.print(lanes)
