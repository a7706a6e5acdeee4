"""Reconnect delays: full-jitter exponential backoff and ``Retry-After`` parsing.

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter") spreads reconnects of many
clients cut at the same moment over the whole window, instead of bunching them at the ceiling:

    delay(attempt) = uniform(0, min(maximum, initial * 2 ** attempt)),  attempt = 0, 1, 2, ...

Pure: the random source is injectable, so tests fix it and the supervisor owns the sleeping.
Without one, every ``Backoff`` draws from one shared ``random.Random``: a Mersenne Twister's
state is ~2.8 KB, a real share of an idle stream's memory when there are 10 000 streams.
"""

from __future__ import annotations

import math
import random
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]

_MAX_EXPONENT = 1000  # 2.0 ** 1024 overflows; any realistic ceiling is reached long before
_SHARED_RNG = random.Random()  # uniform() is one C call under the GIL: safe to share


class Backoff:
    """Delays for consecutive failed attempts; ``reset()`` after a connection that worked."""

    __slots__ = ("_attempt", "_initial", "_maximum", "_rng")

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if initial <= 0:
            raise ValueError(f"initial must be > 0, got {initial}")
        if maximum < initial:
            raise ValueError(f"maximum ({maximum}) must be >= initial ({initial})")
        self._initial = initial
        self._maximum = maximum
        self._rng = rng if rng is not None else _SHARED_RNG
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay: ``min(maximum, initial * 2 ** attempt)``."""
        return min(self._maximum, self._initial * 2.0 ** min(self._attempt, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """A delay drawn uniformly from ``[0, ceiling()]``; the next one may be twice as long."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` (the connection delivered, so the trouble is over)."""
        self._attempt = 0


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110, section 10.2.3).

    Accepts delay-seconds (also with a fraction, which some servers send) or an HTTP-date
    (IMF-fixdate, RFC 850 or asctime; a date without zone is taken as UTC). ``now`` is the Unix
    time the response arrived. Returns ``None`` when unparsable, and never a negative delay (a
    date in the past means "retry now").
    """
    text = value.strip()
    if not text:
        return None
    if text[0].isascii() and text[0].isdigit():
        whole, dot, fraction = text.partition(".")
        if not _digits(whole) or (dot and not _digits(fraction)):
            return None
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
