"""What the local provider serves, independent of any socket: parameters, events, clocks, stats.

Kept apart from the server so the rules (which bytes event N has, when a paced event is
published, which query parameters exist) can be read and tested without asyncio.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache

import orjson

TRANSPORTS = ("sse", "ws", "lines")

EPOCH = 1_700_000_000.0
"""Synthetic clock origin: event N carries ``ts = EPOCH + N/1000`` so its bytes never depend on
when or how fast it was sent (tests and the demo compare stored payloads byte for byte)."""

MALFORMED = b"{not json"

_PAD_UNIT = "".join(random.Random(20_240_601).choices(string.ascii_letters + string.digits, k=4096))


class ProviderError(Exception):
    """The local provider could not do what was asked (bad parameter, port in use, ...)."""


class ParamError(ProviderError):
    """A query parameter is unknown or has a value the provider cannot use."""


@dataclass(slots=True)
class FeedStats:
    """Counters for one feed name, across all of its connections."""

    connections: int = 0
    events_sent: int = 0  # every event written, repeats included
    max_id_sent: int = 0
    malformed_sent: int = 0
    oversize_sent: int = 0
    refused: int = 0  # answers with an error status instead of a stream (fail_first, status)


@dataclass(frozen=True, slots=True)
class FeedParams:
    """The query parameters of one connection; the same names for every transport.

    ``total`` events 1..N then keep-alives only; ``rate`` events/s on a clock shared by the
    feed's connections (0: as fast as possible); ``since`` resume after this id (SSE also reads
    ``Last-Event-ID``, ws a subscribe message) unless ``resumable=0``. Per connection:
    ``disconnect_every`` close after K events (``abrupt=1``: no clean end), ``cut_every`` half
    of event K+1 then drop, ``stall_after`` go silent after K, ``lifetime`` close after S
    seconds. Per feed: ``fail_first`` attempts answered ``fail_status`` (+ ``Retry-After:
    retry_after``); ``status`` answers every attempt. ``malformed_every`` / ``oversize_every``
    add a bad item after every event id divisible by K; ``keepalive`` every S idle seconds;
    ``binary`` ws frames; ``deflate=0`` ws refuses permessage-deflate (frames go out whole,
    as from a provider without compression); ``subscribe=1`` ws sends nothing before a
    subscribe message.
    ``token`` is accepted and ignored: a place for a credential in the query (secret tests).
    """

    total: int | None = None
    rate: float = 0.0
    since: int | None = None
    resumable: bool = True
    disconnect_every: int = 0
    abrupt: bool = False
    cut_every: int = 0
    stall_after: int = 0
    fail_first: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    status: int | None = None
    lifetime: float = 0.0
    malformed_every: int = 0
    oversize_every: int = 0
    oversize_bytes: int = 2_000_000
    keepalive: float | None = None  # None: the transport's default (1 s for SSE/lines, 0 for ws)
    binary: bool = False
    deflate: bool = True
    subscribe: bool = False
    size: int = 200
    token: str | None = None


PARAM_NAMES = frozenset(f.name for f in fields(FeedParams))

_INTS = {"total", "since", "disconnect_every", "cut_every", "stall_after", "fail_first"}
_INTS |= {"malformed_every", "oversize_every", "oversize_bytes", "size"}
_FLOATS = {"rate", "lifetime", "keepalive"}
_BOOLS = {"resumable", "abrupt", "binary", "deflate", "subscribe"}
_STATUSES = {"fail_status", "status"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, raw: str) -> object:
    try:
        if name in _INTS:
            value: object = int(raw)
            if int(raw) < 0:
                raise ValueError
        elif name in _FLOATS:
            value = float(raw)
            if not math.isfinite(float(raw)) or float(raw) < 0:
                raise ValueError
        elif name in _BOOLS:
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError
            value = raw.lower() in _TRUE
        elif name in _STATUSES:
            value = int(raw)
            if not 100 <= int(raw) <= 599:
                raise ValueError
        else:  # retry_after (the header value), token: passed through
            if not raw:
                raise ValueError
            value = raw
    except ValueError:
        raise ParamError(f"bad value for query parameter {name!r}: {raw!r}") from None
    return value


def parse_params(query: Mapping[str, str], transport: str) -> FeedParams:
    """Read a connection's query string; unknown names are refused so typos are loud."""
    values: dict[str, object] = {}
    for name, raw in query.items():
        if name not in PARAM_NAMES:
            raise ParamError(f"unknown query parameter {name!r}")
        values[name] = _convert(name, raw)
    if values.get("keepalive") is None:
        values["keepalive"] = 0.0 if transport == "ws" else 1.0
    return FeedParams(**values)  # type: ignore[arg-type]


def encode_param(value: object) -> str:
    """How ``Provider.url`` writes a Python value into the query string."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@lru_cache(maxsize=64)
def _padding(length: int) -> str:
    reps = length // len(_PAD_UNIT) + 1
    return (_PAD_UNIT * reps)[:length]


def event_bytes(feed: str, n: int, size: int = 200) -> bytes:
    """The JSON of event ``n`` of ``feed``: the same bytes on every connection and every run.

    ``data`` is padded so the whole object is ``size`` bytes when ``size`` allows it.
    """
    ts = EPOCH + n / 1000
    base = orjson.dumps({"id": n, "feed": feed, "ts": ts, "data": ""})
    pad = _padding(max(0, size - len(base)))
    return orjson.dumps({"id": n, "feed": feed, "ts": ts, "data": pad})


def oversize_body(length: int) -> bytes:
    """A valid JSON object of exactly ``length`` bytes (at least 15): an over-large message."""
    return b'{"oversize":"' + b"x" * max(0, length - 15) + b'"}'


class FeedClock:
    """Publication times of a paced feed: event N is published at ``start + N/rate``.

    Shared by every connection to the feed, so a live connection starts where the clock is,
    and a client that reconnects without resuming misses what was published meanwhile.
    """

    __slots__ = ("rate", "start")

    def __init__(self, rate: float, start: float) -> None:
        self.rate = rate
        self.start = start

    def published(self, now: float) -> int:
        """How many events are published at loop time ``now`` (tolerant of float rounding)."""
        return max(0, math.floor((now - self.start) * self.rate + 1e-6))

    def due_at(self, n: int) -> float:
        """Loop time at which event ``n`` is published."""
        return self.start + n / self.rate


@dataclass(slots=True)
class FeedState:
    """Everything the provider remembers about one feed name."""

    name: str
    stats: FeedStats = field(default_factory=FeedStats)
    attempts: int = 0
    clocks: dict[float, FeedClock] = field(default_factory=dict)

    def clock(self, rate: float, now: float) -> FeedClock:
        """The feed's clock for ``rate``, started by the first connection that asked for it."""
        found = self.clocks.get(rate)
        if found is None:
            found = self.clocks[rate] = FeedClock(rate, now)
        return found


def parse_cursor(value: object) -> int | None:
    """A resume hint as an event id: an int or a digit string; anything else means none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
