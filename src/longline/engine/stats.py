"""Per-stream counters and state, as ``longline status`` shows them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any


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

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy with ``updated_at`` set to now."""
        self.updated_at = time.time()
        return asdict(self)
