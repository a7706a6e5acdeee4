"""``GET /metrics``: Prometheus text format, built from a ``Sample`` at scrape time.

A custom prometheus-client collector turns the sample (plain values taken on the event loop)
into metric families, so nothing is counted twice and the hot path keeps no metric objects of
its own. The one exception is the commit-time histogram, observed once per store commit.
The process's own figures (open fds, resident memory, CPU: prometheus-client's process
collector, read from /proc) and its asyncio task count are there so that a leak that grows
with every reconnect shows on a dashboard before it exhausts the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from longline import __version__
from longline.engine.stats import COMMIT_SECONDS

if TYPE_CHECKING:
    from longline.ops.live import Sample

__all__ = ["COMMIT_SECONDS", "CONTENT_TYPE", "render"]

# The classic text format every Prometheus reads (the names here need no UTF-8 escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SampleCollector(Collector):
    """The metric families of one ``Sample``."""

    def __init__(self, sample: Sample) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        s = self.sample
        info = InfoMetricFamily("longline_build", "The running longline.")
        info.add_metric([], {"version": __version__})
        yield info
        stream = ["stream"]
        counters = (
            ("events_stored", "Events stored (new keys), over the store's life.", "events"),
            ("duplicates", "Events dropped because their key was stored.", "duplicates"),
            ("quarantined", "Items kept aside unstored (too big, no key).", "quarantined"),
            ("bytes_received", "Message bytes received by this process.", "bytes_received"),
        )
        for name, doc, attr in counters:
            fam = CounterMetricFamily(f"longline_{name}", doc, labels=stream)
            for st in s.streams:
                fam.add_metric([st.name], getattr(st, attr))
            yield fam
        rec = CounterMetricFamily(
            "longline_reconnects",
            "Reconnects by the cause that ended the connection before (rotation: planned "
            "make-before-break; unknown: before this process started).",
            labels=["stream", "cause"],
        )
        for st in s.streams:
            for cause, n in sorted(st.causes.items()):
                rec.add_metric([st.name, cause], n)
        yield rec
        gauges = (
            ("connections", "Open connections.", lambda st: st.connections),
            ("stream_up", "1 while a connection is live.", lambda st: int(st.up)),
            ("pending_events", "Events received, not yet committed.", lambda st: st.pending),
        )
        for name, doc, get in gauges:
            g = GaugeMetricFamily(f"longline_{name}", doc, labels=stream)
            for st in s.streams:
                g.add_metric([st.name], get(st))
            yield g
        last = GaugeMetricFamily(
            "longline_last_event_timestamp_seconds",
            "When the last stored event was received (Unix time).",
            labels=stream,
        )
        for st in s.streams:
            if st.last_event_at is not None:
                last.add_metric([st.name], st.last_event_at)
        yield last
        lane = ["processor", "stream"]
        delivered = CounterMetricFamily(
            "longline_processor_delivered", "Events a processor acknowledged.", labels=lane
        )
        lag = GaugeMetricFamily(
            "longline_processor_lag_events", "Events stored but not yet delivered.", labels=lane
        )
        dead = CounterMetricFamily(
            "longline_dead_letters", "Events a processor gave up on.", labels=lane
        )
        for ln in s.lanes:
            delivered.add_metric([ln.processor, ln.stream], ln.delivered)
            lag.add_metric([ln.processor, ln.stream], ln.lag)
            dead.add_metric([ln.processor, ln.stream], ln.dead)
        yield from (delivered, lag, dead)
        tasks = GaugeMetricFamily(
            "longline_asyncio_tasks", "asyncio tasks alive on the event loop (a leak grows it)."
        )
        tasks.add_metric([], s.tasks)
        yield tasks


def render(sample: Sample) -> bytes:
    """The exposition text of ``sample`` and the commit histogram (may run in a thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SampleCollector(sample))
    registry.register(COMMIT_SECONDS)
    ProcessCollector(registry=registry)  # process_open_fds, process_resident_memory_bytes, ...
    return generate_latest(registry)
