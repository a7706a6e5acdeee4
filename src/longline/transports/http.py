"""Shared handshake helpers for aiohttp-based transports: classify a refused request."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp

from longline.core.backoff import parse_retry_after
from longline.core.errors import Outcome, classify_status
from longline.core.secrets import longest_secret, redacted_head

BODY_HEAD = 200
"""Bytes of a refusal's body kept for the log line: enough for a provider's error message."""
_BODY_WAIT = 1.0  # seconds: a refusal whose body trickles must not hold up the reconnect
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def body_read(limit: int = BODY_HEAD) -> int:
    """Bytes to read for a body head of ``limit`` bytes: past the cut by the longest registered
    secret, so a secret crossing it is whole when redacted, and one more, which tells whether
    the body went on."""
    return limit + longest_secret() + 1


async def body_head(content: aiohttp.StreamReader, limit: int = BODY_HEAD) -> str:
    """The first ``limit`` bytes of a body as one printable, redacted line ("" if none came).

    Registered secrets (``ops.logging``) are replaced, since a provider may echo the token it
    refused; the text goes to logs and to the stored status.
    """
    want = body_read(limit)
    buf = bytearray()
    try:
        async with asyncio.timeout(_BODY_WAIT):
            while len(buf) < want:
                chunk = await content.read(want - len(buf))
                if not chunk:
                    break
                buf += chunk
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass
    return printable(bytes(buf), limit)


def printable(raw: bytes, limit: int = BODY_HEAD) -> str:
    """The first ``limit`` bytes of ``raw`` as one printable line, " ..." if more followed.

    Registered secrets are redacted before the cut (``core.secrets.redacted_head``), so ``raw``
    should hold ``body_read(limit)`` bytes when the body has them.
    """
    chars = len(raw[:limit].decode("utf-8", "replace"))  # a char split by the cut counts whole
    head, cut = redacted_head(raw.decode("utf-8", "replace"), chars)
    text = " ".join(_UNPRINTABLE.sub(" ", head).split())
    if text and cut:
        text += " ..."
    return text


def refused(status: int, reason: str | None, headers: Mapping[str, str], body: str = "") -> Outcome:
    """The outcome of a handshake answered with a non-success HTTP status (``reason``: the
    server's status text, None for the standard phrase)."""
    raw = headers.get("Retry-After")
    retry_after = parse_retry_after(raw, time.time()) if raw else None
    cause = classify_status(status, retry_after)
    if reason is None:
        detail = Outcome(cause, status).describe()
    else:
        detail = f"HTTP {status} {reason}".strip()
    if body:
        detail = f"{detail}: {body}"
    return Outcome(cause, status, retry_after, detail, body)


# aiohttp's ws_connect raises on a refused handshake without reading the body. A trace on the
# session reads it while the response is still open, keyed by the handshake's random
# Sec-WebSocket-Key, which the raised error's request_info carries back to the transport.
_WS_KEY = "Sec-WebSocket-Key"
_KEPT = 256  # bodies of refusals whose connection was aborted before it collected them
_handshake_bodies: OrderedDict[str, str] = OrderedDict()


async def _on_request_end(
    session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    key = params.headers.get(_WS_KEY)
    if key is None or params.response.status == 101:
        return
    _handshake_bodies[key] = await body_head(params.response.content)
    while len(_handshake_bodies) > _KEPT:
        _handshake_bodies.popitem(last=False)


def refusal_trace() -> aiohttp.TraceConfig:
    """A session trace that keeps the body head of a refused WebSocket handshake."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    return trace


def handshake_body(request_headers: Mapping[str, str]) -> str:
    """The body head ``refusal_trace`` kept for the handshake sent with these headers."""
    key = request_headers.get(_WS_KEY)
    return _handshake_bodies.pop(key, "") if key else ""


def describe(e: BaseException) -> str:
    """A short error text without URLs (they may carry secrets in the query), redacted before
    it is cut (``core.secrets.redacted_head``)."""
    text = redacted_head(str(e), 200)[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for an http(s):// or ws(s):// URL: ``HTTP_PROXY`` or
    ``HTTPS_PROXY``, unless ``NO_PROXY`` covers the host. (For ws:// and wss:// aiohttp's
    ``trust_env`` would look for ``WS_PROXY`` / ``WSS_PROXY``, which nobody sets.)"""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https" if parts.scheme in ("https", "wss") else "http")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # untyped
    if proxy is None or bypass(parts.netloc, proxies):
        return None
    return proxy
