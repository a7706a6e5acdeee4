"""Per-stream counters and state, as ``longline status`` and ``/metrics`` show them, and the
store commit histogram the writer observes."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from prometheus_client import Histogram

from longline.core.errors import Cause

# Observed by the writer per commit; ``ops.metrics`` adds it to every scrape.
COMMIT_SECONDS = Histogram(
    "longline_commit_seconds",
    "Time of one store commit (a batch of events with its checkpoint).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,  # process-wide; each scrape's registry adds it
)

# The ``cause`` label of ``longline_reconnects_total`` for each way a connection ends.
CAUSE_LABELS = {
    Cause.NETWORK: "network",
    Cause.HTTP_5XX: "http_5xx",
    Cause.RATE_LIMITED: "rate_limited",
    Cause.PERMANENT: "refused",
    Cause.STALL: "stall",
    Cause.CLOSED_BY_PEER: "closed",
    Cause.TOO_BIG: "too_big",
}
_NOT_SAVED = ("reconnect_causes", "bytes_received")  # for /metrics only, not in status
_NOT_FIELDS = ("saved_mark", "saved_at")  # when it was last saved, not part of the status


@dataclass(slots=True)
class StreamStats:
    """Live counters of one stream; saved to the store about once a second."""

    state: str = "connecting"  # connecting | live | backing-off | failed | stopped
    reason: str | None = None
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    reconnects: int = 0
    rotations: int = 0
    connections: int = 0
    last_seq: int = 0
    uncommitted: int = 0  # items a shutdown could not commit within shutdown_timeout
    last_event_at: float | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    pid: int = 0
    # Since when no connection has been live (None while one is): `status --check` calls a
    # stream stalled when this is older than its stall_timeout.
    down_since: float | None = None
    reconnect_causes: dict[str, int] | None = None  # made at the first reconnect
    bytes_received: int = 0  # by connections that have ended (open ones count their own)
    saved_mark: int = 0  # ``mark()`` when the status was last saved (the runner's)
    saved_at: float = 0.0  # and when (loop time)

    def __post_init__(self) -> None:
        if self.down_since is None:
            self.down_since = self.started_at or time.time()

    def set_state(self, state: str) -> None:
        """Move to ``state``; going live clears the reason of the last failure."""
        if state == "live":
            self.reason, self.down_since = None, None
        elif self.state == "live" or self.down_since is None:
            self.down_since = time.time()
        self.state = state

    def count_cause(self, cause: Cause | None) -> None:
        """Count one reconnect under the cause that ended the connection before it."""
        if cause is None:
            return
        if self.reconnect_causes is None:
            self.reconnect_causes = {}
        label = CAUSE_LABELS[cause]
        self.reconnect_causes[label] = self.reconnect_causes.get(label, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy with ``updated_at`` set to now."""
        self.updated_at = time.time()
        return {name: getattr(self, name) for name in _SAVED}

    def mark(self) -> int:
        """A fingerprint of what ``snapshot`` saves, ``updated_at`` aside: equal marks, same
        status (a runner saves an unchanged status only now and then)."""
        return hash(tuple([getattr(self, name) for name in _COMPARED]))


_SAVED = tuple(f.name for f in fields(StreamStats) if f.name not in _NOT_SAVED + _NOT_FIELDS)
_COMPARED = tuple(name for name in _SAVED if name != "updated_at")
