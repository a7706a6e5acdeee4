"""``kind: redis``: append each event to a Redis stream (``XADD``), deduplicated by a marker.

Redis streams have no dedup id: their entry ids must increase, so a retried ``XADD`` appends a
second copy. To make a retry harmless anyway, each event is appended by a Lua script that, in
one atomic step, skips the event when its marker key ``longline:dedup:<processor>:<stream>:<seq>``
exists, else appends it and sets the marker with a TTL (``dedup_window``, like JetStream's
duplicate window). The marker is set *after* the ``XADD``, so an ``XADD`` that fails never
leaves a marker behind that would hide the event later. ``dedup_window: 0`` turns markers off
(plain at-least-once). Batches go in chunks of ``_CHUNK`` events so one script never blocks the
server for long. Redis Cluster is not supported (the script's keys span hash slots).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, field_validator

from longline.core.model import StoredEvent
from longline.core.secrets import redact
from longline.processors.base import ProcessorError, event_dict
from longline.processors.registry import Duration, ProcessorKind, ProcessorSettings, url_secrets

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["KIND", "RedisProcessor", "RedisSettings", "build", "entry_fields", "stream_template"]

_CHUNK = 500  # events per script call
_SCHEMES = ("redis", "rediss", "unix")

# KEYS[1] = stream, KEYS[2..] = one marker per event; ARGV = ttl_ms, maxlen, then per event:
# its field count followed by field, value, ...  Returns the number of entries appended.
_XADD_ONCE = """
local ttl = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local i = 3
local added = 0
for k = 2, #KEYS do
  local n = tonumber(ARGV[i])
  local fields = {}
  for j = 1, n do fields[j] = ARGV[i + j] end
  i = i + n + 1
  if ttl == 0 or redis.call('EXISTS', KEYS[k]) == 0 then
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
    else
      redis.call('XADD', KEYS[1], '*', unpack(fields))
    end
    if ttl > 0 then redis.call('SET', KEYS[k], '1', 'PX', ttl) end
    added = added + 1
  end
end
return added
"""


def stream_template(v: str) -> str:
    """Check a name template whose only placeholder is ``{stream}`` (the longline stream)."""
    try:
        parts = list(string.Formatter().parse(v))
    except ValueError as exc:
        raise ValueError('unbalanced braces (write "{{" and "}}" for literal ones)') from exc
    for _, field, spec, conversion in parts:
        if field is not None and (field != "stream" or spec or conversion):
            raise ValueError(f'the only placeholder allowed is "{{stream}}", not "{{{field}}}"')
    if not v.format(stream="s"):
        raise ValueError("must not be empty")
    return v


class RedisSettings(ProcessorSettings):
    """``url`` of the server, ``stream_key`` template, optional ``maxlen``, ``dedup_window``."""

    kind: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    stream_key: str = "longline:{stream}"
    maxlen: int | None = Field(default=None, ge=1)  # approximate trim (XADD MAXLEN ~)
    dedup_window: Duration = Field(default=300.0, ge=0)  # 0: no markers
    timeout: Duration = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            ok = urlsplit(v).scheme.lower() in _SCHEMES
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")  # may hold a password
        return v

    @field_validator("stream_key")
    @classmethod
    def _stream_key(cls, v: str) -> str:
        return stream_template(v)

    def secret_values(self) -> set[str]:
        return url_secrets(self.url)


def entry_fields(stream: str, event: StoredEvent) -> list[str]:
    """The stream entry of one event: ``stream``, ``seq``, ``key``, ``received_at``, ``payload``
    (JSON text), then ``cursor`` and ``event`` when set, as field, value, ..."""
    out: list[str] = []
    for name, value in event_dict(stream, event).items():
        if name == "payload":
            out += [name, orjson.dumps(value).decode()]
        elif value is not None:
            out += [name, str(value)]
    return out


class RedisProcessor:
    """One connection pool per processor; the script is loaded once and called by its SHA."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._client: Redis | None = None
        self._script: Any = None
        self._secrets = settings.secret_values()

    def _error(self, what: str, exc: Exception) -> ProcessorError:
        """A retried failure; a lost or refused connection marks the server unavailable (the
        batch waits for it), an error reply or a timeout counts toward the attempts."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)
        unavailable = isinstance(exc, (RedisConnectionError, ConnectionError))
        return ProcessorError(f"redis {what} failed: {detail}", unavailable=unavailable)

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise ProcessorError(f"kind redis needs redis>=5: {exc}", permanent=True) from exc
        timeout = self.settings.timeout
        client = Redis.from_url(
            self.settings.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # the dispatcher retries, with its own backoff
        )
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            raise self._error("connect", exc) from exc
        self._client = client
        self._script = client.register_script(_XADD_ONCE)

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        if self._client is None:
            await self.start()
        key = self.settings.stream_key.format(stream=stream)
        ttl_ms = round(self.settings.dedup_window * 1000)
        prefix = f"longline:dedup:{self.settings.name}:{stream}:"
        for start in range(0, len(events), _CHUNK):
            chunk = events[start : start + _CHUNK]
            args: list[str | int] = [ttl_ms, self.settings.maxlen or 0]
            for ev in chunk:
                fields = entry_fields(stream, ev)
                args += [len(fields), *fields]
            keys = [key, *(f"{prefix}{ev.seq}" for ev in chunk)]
            try:
                await self._script(keys=keys, args=args)
            except Exception as exc:
                raise self._error("XADD", exc) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def build(settings: RedisSettings) -> RedisProcessor:
    return RedisProcessor(settings)


KIND = ProcessorKind("redis", RedisSettings, build, "redis", ("redis",))
