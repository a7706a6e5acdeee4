"""Shared handshake helpers for aiohttp-based transports: classify a refused request."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

import aiohttp

from longline.core.backoff import parse_retry_after
from longline.core.errors import Outcome, classify_status
from longline.ops.logging import redact, registered_secrets

BODY_HEAD = 200
"""Bytes of a refusal's body kept for the log line: enough for a provider's error message."""
_BODY_WAIT = 1.0  # seconds: a refusal whose body trickles must not hold up the reconnect
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


async def body_head(content: aiohttp.StreamReader, limit: int = BODY_HEAD) -> str:
    """The first ``limit`` bytes of a body as one printable, redacted line ("" if none came).

    Registered secrets (``ops.logging``) are replaced, since a provider may echo the token it
    refused; the text goes to logs and to the stored status.
    """
    buf = bytearray()
    try:
        async with asyncio.timeout(_BODY_WAIT):
            while len(buf) < limit:
                chunk = await content.read(limit - len(buf))
                if not chunk:
                    break
                buf += chunk
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass
    text = _UNPRINTABLE.sub(" ", buf.decode("utf-8", "replace")).strip()
    text = " ".join(text.split())
    if text and len(buf) >= limit:
        text += " ..."
    return redact(text, registered_secrets())


def refused(
    status: int, reason: str | None, headers: Mapping[str, str], body: str = ""
) -> Outcome:
    """The outcome of a handshake answered with a non-success HTTP status."""
    raw = headers.get("Retry-After")
    retry_after = parse_retry_after(raw, time.time()) if raw else None
    cause = classify_status(status, retry_after)
    detail = f"HTTP {status} {reason or ''}".strip()
    if body:
        detail = f"{detail}: {body}"
    return Outcome(cause, status, retry_after, detail, body)
