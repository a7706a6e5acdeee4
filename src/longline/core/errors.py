"""Why a connection ended, and what to do about it: retry after a delay, or stop.

Pure: transports report an ``Outcome``; the supervisor asks a ``RetryPolicy`` for a ``Decision``
and does the sleeping. The policy follows the spirit of X's published reconnect rules: an
established connection that drops reconnects at once, failures back off exponentially with full
jitter, 429 waits at least what the server asked, and a permanent refusal (bad credentials, gone
endpoint) stops after a few tries and reports instead of hammering.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from http import HTTPStatus

from longline.core.backoff import Backoff

__all__ = ["Cause", "Decision", "Outcome", "RetryPolicy", "classify_status"]

_TRANSIENT_4XX = frozenset({408, 425})  # Request Timeout, Too Early: retrying can succeed


class Cause(enum.Enum):
    """The kind of end of a connection, which decides the retry treatment."""

    NETWORK = "network error"  # DNS, refused, reset, TLS, timeout while connecting
    HTTP_5XX = "server error"  # 5xx, and the transient 408 / 425
    RATE_LIMITED = "rate limited"  # 429, or 503 with Retry-After
    PERMANENT = "refused"  # other 4xx (401, 403, 404, 410, ...) and unexpected statuses
    STALL = "stalled"  # no byte for stall_timeout
    CLOSED_BY_PEER = "closed by peer"  # clean end of the body, WebSocket close
    TOO_BIG = "message too big"  # WebSocket close 1009


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection ended, as a transport reports it."""

    cause: Cause
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""
    body: str = ""
    """The head of a refusal's response body, where providers say why (already redacted)."""
    final: bool = False
    """The provider said never to retry (a session's ``Fail``, e.g. Discord close 4004): stop
    at once instead of after ``max_permanent`` refusals."""

    def describe(self) -> str:
        """Short text for logs and status: ``HTTP 401 Unauthorized: <body head>`` or the
        cause's label."""
        if self.status is None:
            return f"{self.cause.value}: {self.detail}" if self.detail else self.cause.value
        try:
            what = f"HTTP {self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            what = f"HTTP {self.status}"
        return f"{what}: {self.body}" if self.body else what


@dataclass(frozen=True, slots=True)
class Decision:
    """What the supervisor does next: stop for good, or reconnect after ``delay`` seconds."""

    stop: bool
    delay: float
    reason: str


def classify_status(status: int, retry_after: float | None) -> Cause:
    """The cause for an HTTP status that refused the stream.

    5xx, 408 and 425 are worth retrying; 429 (and 503 sent with ``Retry-After``) is rate
    limiting; every other status is a refusal that more attempts will not fix, 2xx and 3xx
    included (a stream answered 204 or an unfollowed redirect will not change by itself).
    """
    if status == 429 or (status == 503 and retry_after is not None):
        return Cause.RATE_LIMITED
    if 500 <= status <= 599 or status in _TRANSIENT_4XX:
        return Cause.HTTP_5XX
    return Cause.PERMANENT


class RetryPolicy:
    """Turns each ``Outcome`` into a ``Decision``, remembering consecutive failures.

    - ``was_live`` (the connection had delivered messages) resets the backoff and the permanent
      count first, so a drop after a good run reconnects at once (a delay within
      ``[0, initial]``);
    - PERMANENT retries with backoff until ``max_permanent`` consecutive refusals, then stops;
    - RATE_LIMITED waits ``max(retry_after, backoff delay)``;
    - anything else waits the backoff delay.
    """

    __slots__ = ("_backoff", "_max_permanent", "_permanent")

    def __init__(self, backoff: Backoff, max_permanent: int = 3) -> None:
        if max_permanent < 1:
            raise ValueError(f"max_permanent must be >= 1, got {max_permanent}")
        self._backoff = backoff
        self._max_permanent = max_permanent
        self._permanent = 0

    @property
    def consecutive_permanent(self) -> int:
        """Permanent refusals in a row so far."""
        return self._permanent

    def decide(self, outcome: Outcome, was_live: bool) -> Decision:
        """Stop or retry after this outcome; draws one backoff delay when retrying."""
        if was_live:
            self._backoff.reset()
            self._permanent = 0
        what = outcome.describe()
        if outcome.final:
            self._permanent += 1
            return Decision(True, 0.0, what)
        if outcome.cause is Cause.PERMANENT:
            self._permanent += 1
            if self._permanent >= self._max_permanent:
                tries = "1 attempt" if self._permanent == 1 else f"{self._permanent} attempts"
                return Decision(True, 0.0, f"{what} ({tries})")
        else:
            self._permanent = 0
        delay = self._backoff.next_delay()
        if outcome.cause is Cause.RATE_LIMITED and outcome.retry_after is not None:
            delay = max(outcome.retry_after, delay)
        return Decision(False, delay, f"{what}; retrying in {delay:.2f} s")
