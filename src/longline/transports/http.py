"""Shared handshake helpers for aiohttp-based transports: classify a refused request."""

from __future__ import annotations

import time
from collections.abc import Mapping

from longline.core.backoff import parse_retry_after
from longline.core.errors import Outcome, classify_status


def refused(status: int, reason: str | None, headers: Mapping[str, str]) -> Outcome:
    """The outcome of a handshake answered with a non-success HTTP status."""
    raw = headers.get("Retry-After")
    retry_after = parse_retry_after(raw, time.time()) if raw else None
    cause = classify_status(status, retry_after)
    return Outcome(cause, status, retry_after, f"HTTP {status} {reason or ''}".strip())
