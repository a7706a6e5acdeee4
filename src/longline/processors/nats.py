"""``kind: nats``: publish each event to NATS JetStream and wait for the stream's acks.

Each message carries ``Nats-Msg-Id: <stream>:<seq>``, so JetStream drops a re-delivered event
within its duplicate window (2 minutes by default): a retry or a restart after a crash adds no
second copy. A batch is published pipelined (``publish_async``) in seq order and counts as
delivered only once every message is acknowledged within ``timeout``; a missing ack is a retry.

A server that cannot be reached, a closed connection and "no responders" (no JetStream stream
listens yet, as while a restarted server recovers its streams) mark the sink unavailable: the
dispatcher keeps the batch until the server is back instead of spending its attempts.

Reconnecting belongs to the dispatcher, not to the client: the connection is opened with
nats-py's own reconnect loop off (it would buffer publishes and retry forever inside one
delivery), and a delivery that finds the connection closed opens a new one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

import orjson
from pydantic import Field, field_validator, model_validator

from longline.core.model import StoredEvent
from longline.core.secrets import redact
from longline.processors.base import ProcessorError, event_dict
from longline.processors.redis import stream_template
from longline.processors.registry import Duration, ProcessorKind, ProcessorSettings

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["KIND", "MSG_ID_HEADER", "NatsProcessor", "NatsSettings", "build", "subject_filter"]

log = logging.getLogger(__name__)
MSG_ID_HEADER = "Nats-Msg-Id"
_TOKEN = re.compile(r"[^\s.*>{}]+|\{stream\}")
_STREAM_NAME = re.compile(r"[^\s.*>/\\]+")


class NatsSettings(ProcessorSettings):
    """``servers``, ``subject`` template, ack ``timeout``; ``stream_name`` of the JetStream
    stream (checked on every publish when set), created at start when ``create_stream``."""

    kind: Literal["nats"]
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1)
    subject: str = "longline.{stream}"
    stream_name: str | None = None
    create_stream: bool = False
    timeout: Duration = Field(default=5.0, gt=0)

    @field_validator("servers", mode="before")
    @classmethod
    def _one_server(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("servers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        for url in v:
            try:
                ok = urlsplit(url).scheme.lower() in ("nats", "tls", "ws", "wss")
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("each must be a nats://, tls://, ws:// or wss:// URL")
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        stream_template(v)
        if not all(_TOKEN.fullmatch(t) for t in v.split(".")):
            raise ValueError(
                'must be dot-separated tokens without spaces or wildcards; "{stream}" must be '
                'a whole token (like "events.{stream}")'
            )
        return v

    @field_validator("stream_name")
    @classmethod
    def _stream_name(cls, v: str | None) -> str | None:
        if v is not None and not _STREAM_NAME.fullmatch(v):
            raise ValueError("must not hold spaces, '.', '*', '>', '/' or '\\'")
        return v

    @model_validator(mode="after")
    def _create_needs_name(self) -> Self:
        if self.create_stream and not self.stream_name:
            raise ValueError("create_stream: true needs stream_name")
        return self

    def secret_values(self) -> set[str]:
        """Passwords in server URLs, and a token written as ``nats://TOKEN@host``."""
        out: set[str] = set()
        for url in self.servers:
            try:
                parts = urlsplit(url)
                secret = parts.password or parts.username
            except ValueError:
                continue
            if secret:
                out.add(secret)
        return out


def subject_filter(subject: str) -> str:
    """The JetStream subject filter covering every stream's subject (``{stream}`` -> ``*``)."""
    return subject.replace("{stream}", "*")


class NatsProcessor:
    """One NATS connection per processor, reopened by ``deliver`` when it was lost."""

    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self._nc: Client | None = None
        self._js: Any = None
        self._last_error: Exception | None = None  # the client reports causes to a callback
        self._lock = asyncio.Lock()
        self._secrets = settings.secret_values()

    def _error(
        self, what: str, exc: BaseException, *, permanent: bool = False, unavailable: bool = False
    ) -> ProcessorError:
        detail = redact(f"{type(exc).__name__}: {exc}".rstrip(": "), self._secrets)
        return ProcessorError(
            f"nats {what} failed: {detail}",
            permanent=permanent,
            unavailable=unavailable or _unavailable(exc),
        )

    def _connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        log.debug("%s: nats client: %s", self.settings.name, redact(str(exc), self._secrets))

    async def start(self) -> None:
        async with self._lock:  # lanes of several streams may find the connection lost at once
            if self._nc is None or not self._nc.is_connected:
                await self.close()
                await self._connect()

    async def _connect(self) -> None:
        try:
            import nats
            from nats.errors import NoServersError
        except ImportError as exc:
            raise ProcessorError(f"kind nats needs nats-py>=2.8: {exc}", permanent=True) from exc
        try:
            nc = await nats.connect(
                self.settings.servers,
                connect_timeout=self.settings.timeout,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # 0 would mean forever: two tries per server
                reconnect_time_wait=0.1,
                error_cb=self._on_error,
                name=f"longline:{self.settings.name}",
            )
        except Exception as exc:
            cause = self._last_error if isinstance(exc, NoServersError) else None
            raise self._error("connect", cause or exc, unavailable=True) from exc
        js = nc.jetstream(timeout=self.settings.timeout)
        if self.settings.create_stream:
            try:
                await self._ensure_stream(js)
            except ProcessorError:
                await nc.close()
                raise
        self._nc, self._js = nc, js

    async def _ensure_stream(self, js: Any) -> None:
        """Create the JetStream stream unless it exists (an existing one is left as it is)."""
        from nats.js.errors import NotFoundError

        name = self.settings.stream_name
        try:
            try:
                await js.stream_info(name)
            except NotFoundError:
                await js.add_stream(name=name, subjects=[subject_filter(self.settings.subject)])
        except Exception as exc:
            # JetStream may still be recovering after a restart: wait for it, do not dead-letter
            raise self._error(f"creating JetStream stream {name}", exc, unavailable=True) from exc

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        await self.start()
        from nats.errors import MaxPayloadError

        subject = self.settings.subject.format(stream=stream)
        futures: list[asyncio.Future[Any]] = []
        try:
            for ev in events:
                futures.append(
                    await self._js.publish_async(
                        subject,
                        orjson.dumps(event_dict(stream, ev)),
                        stream=self.settings.stream_name,
                        headers={MSG_ID_HEADER: f"{stream}:{ev.seq}"},
                    )
                )
        except MaxPayloadError as exc:  # this event never fits: isolate and dead-letter it
            _cancel(futures)
            raise self._error(f"publish of {stream} seq {ev.seq}", exc, permanent=True) from exc
        except Exception as exc:
            _cancel(futures)
            raise self._error("publish", exc, unavailable=not self._connected()) from exc
        if not futures:
            return
        _, pending = await asyncio.wait(futures, timeout=self.settings.timeout)
        _cancel(futures)
        if pending:
            raise ProcessorError(
                f"nats: {len(pending)} of {len(futures)} publish acks missing after "
                f"{self.settings.timeout:g}s",
                unavailable=not self._connected(),  # the server went away mid-batch
            )
        for fut in futures:  # the first failure, in seq order
            if (failure := fut.exception()) is not None:
                raise self._error("publish", failure)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception as exc:
                log.debug("%s: closing nats: %s", self.settings.name, exc)


def _unavailable(exc: BaseException) -> bool:
    """Failures that say the server (or its JetStream) is not there now, not that the batch
    is wrong: those must not spend the batch's attempts."""
    from nats.errors import (
        ConnectionClosedError,
        ConnectionReconnectingError,
        NoRespondersError,
        StaleConnectionError,
    )
    from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

    kinds = (
        ConnectionClosedError,
        ConnectionReconnectingError,
        NoRespondersError,
        NoStreamResponseError,
        StaleConnectionError,
        ServiceUnavailableError,
        ConnectionError,
    )
    return isinstance(exc, kinds)


def _cancel(futures: list[asyncio.Future[Any]]) -> None:
    for fut in futures:
        if not fut.done():
            fut.cancel()


def build(settings: NatsSettings) -> NatsProcessor:
    return NatsProcessor(settings)


KIND = ProcessorKind("nats", NatsSettings, build, "nats", ("nats",))
