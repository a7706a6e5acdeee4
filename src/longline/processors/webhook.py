"""``kind: webhook``: POST each batch as JSON to a URL, signed with HMAC-SHA256.

The body is ``{"stream": ..., "events": [...]}``. With a ``secret`` the request carries
``X-Longline-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` (the GitHub
convention), so the receiver can check the batch came from us. Status codes decide what
happens next: 2xx delivered; 408, 429 (after its ``Retry-After``) and 5xx retried, like a
timeout or a network error; any other 4xx, or a redirect, is permanent (the batch would fail
the same way again) and goes to the dead letters at once. A refused connection, 503 and 429
mark the sink unavailable: the dispatcher keeps the batch until the receiver is back, however
long that takes, instead of spending its attempts (a timeout or another 5xx may be the batch's
own doing, so those count).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection, Sequence
from typing import Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from pydantic import Field, field_validator

from longline.core.backoff import parse_retry_after
from longline.core.model import StoredEvent
from longline.core.secrets import longest_secret, redact, redacted_head
from longline.processors.base import ProcessorError, event_dicts
from longline.processors.registry import (
    Duration,
    ProcessorKind,
    ProcessorSettings,
    header_secrets,
    url_secrets,
)

__all__ = ["KIND", "SIGNATURE_HEADER", "WebhookProcessor", "WebhookSettings", "build", "sign"]

SIGNATURE_HEADER = "X-Longline-Signature"
_RETRY_STATUSES = frozenset({408, 429})
_UNAVAILABLE_STATUSES = frozenset({429, 503})  # "not now": the batch is not at fault
_BODY_HEAD = 200  # characters of a failing response body kept in the error


class WebhookSettings(ProcessorSettings):
    """``url`` (http/https), optional ``secret`` for the signature, ``timeout``, ``headers``."""

    kind: Literal["webhook"]
    url: str
    secret: str | None = None
    timeout: Duration = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be an http:// or https:// URL")  # never quote: may hold a token
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if any(c in name + value for c in "\r\n\0") or not name.strip() or ":" in name:
                raise ValueError(f"header {name!r}: invalid name or value")
        return v

    def secret_values(self) -> set[str]:
        return (
            ({self.secret} if self.secret else set())
            | url_secrets(self.url)
            | (header_secrets(self.headers))
        )


def sign(secret: str, body: bytes) -> str:
    """The ``X-Longline-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookProcessor:
    """One aiohttp session per processor, reused across batches and streams."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._secrets = settings.secret_values()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                headers={"User-Agent": "longline-webhook"},
            )

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        if self._session is None:
            await self.start()
        assert self._session is not None
        body = orjson.dumps({"stream": stream, "events": event_dicts(stream, events)})
        headers = {**self.settings.headers, "Content-Type": "application/json"}
        if self.settings.secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.secret, body)
        try:
            async with self._session.post(
                self.settings.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return
                text = await _head(resp, self._secrets)
                retry_after = None
                if resp.status == 429 and (value := resp.headers.get("Retry-After")):
                    retry_after = parse_retry_after(value, time.time())
        except TimeoutError as exc:
            raise ProcessorError(f"webhook timed out after {self.settings.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            detail = redact(str(exc), self._secrets)
            raise ProcessorError(
                f"webhook request failed: {type(exc).__name__}: {detail}",
                unavailable=isinstance(exc, aiohttp.ClientConnectorError),  # never reached it
            ) from exc
        message = f"webhook answered HTTP {resp.status}" + (f": {text}" if text else "")
        permanent = resp.status < 500 and resp.status not in _RETRY_STATUSES
        raise ProcessorError(
            redact(message, self._secrets),
            permanent=permanent,
            retry_after=retry_after,
            unavailable=resp.status in _UNAVAILABLE_STATUSES,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _head(resp: aiohttp.ClientResponse, secrets: Collection[str]) -> str:
    """The start of an error response body, for the dead letter's error text (redacted before
    it is cut, so it reads past the cut by the longest secret)."""
    want, raw = _BODY_HEAD * 4 + longest_secret(secrets), b""
    try:
        while len(raw) < want and (chunk := await resp.content.read(want - len(raw))):
            raw += chunk
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return redacted_head(raw.decode("utf-8", "replace").strip(), _BODY_HEAD, secrets)[0]


def build(settings: WebhookSettings) -> WebhookProcessor:
    return WebhookProcessor(settings)


KIND = ProcessorKind("webhook", WebhookSettings, build)
