"""The provider session interface: the conversation a feed needs around its events.

Some feeds are not "open a URL and read": Slack Socket Mode hands out a URL per connection and
wants every envelope acknowledged, Twitch EventSub wants subscriptions created with the id its
welcome message gives, Discord wants heartbeats and a resume. A ``Session`` says what to do;
the connection (``sessions.connection``) does the I/O and keeps longline's promises around it:

- ``connect_url`` runs before every connection; raise ``ConnectionEnded`` (see ``refuse``) and
  the attempt ends like a refused handshake (429 waits ``Retry-After``, 401/403 stop);
  ``on_refused`` hears of a refused handshake (a 401: drop a cached token);
- ``on_message`` turns each received message into actions: ``Store`` (an event, keyed by the
  session; its ``ack`` is sent only once the event is committed), ``Control`` (protocol, not
  stored; every message counts as liveness), ``Reply`` (sent now), ``Ready`` (the conversation is
  established: a predecessor being replaced may close now), ``Reconnect`` (open a successor,
  close this one once the successor is ready: make-before-break), ``Spawn`` (run a coroutine
  for this connection, e.g. heartbeats or an HTTP call) and ``Fail`` (stop the stream).

A new ``Session`` is made for every connection; ``SessionContext.state`` is shared by the
connections of one slot (and survives reconnects), for what a conversation carries over
(Discord's session id and sequence). Sessions are plain Python: a third party writes one the
way the presets in ``sessions.presets`` are written, and names it in the config as
``session: {factory: "package.module:Class", ...options}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn, Protocol

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict

from longline.core.errors import Cause, Outcome
from longline.transports.base import ConnectionEnded
from longline.transports.http import body_head, refused

log = logging.getLogger(__name__)

__all__ = [
    "Action",
    "Control",
    "Fail",
    "NoOptions",
    "Quarantine",
    "Ready",
    "Received",
    "Reconnect",
    "Reply",
    "Session",
    "SessionContext",
    "SessionLink",
    "Spawn",
    "Store",
    "Verdict",
    "refuse",
    "request_json",
]


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Store:
    """Store ``payload`` (text, usually JSON) under ``key``; then send ``ack``, if any, but only
    after the event is committed. ``cursor`` advances the stream's checkpoint with it."""

    key: str
    payload: str
    cursor: str | None = None
    ack: str | None = None
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Quarantine:
    """Keep ``raw`` in the quarantine with ``reason``: it arrived but cannot be stored as an
    event (never a silent drop). ``ack``, if any, is sent once it is written there."""

    reason: str
    raw: bytes
    ack: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A protocol message (hello, welcome, keepalive): not stored; it kept the stream live."""


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``text`` on this connection now."""

    text: str


@dataclass(frozen=True, slots=True)
class Ready:
    """The conversation is established (hello, welcome, READY): a predecessor may close."""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Open a successor (to ``url``, or a fresh ``connect_url`` when None) and close this
    connection once the successor is ready (make-before-break)."""

    url: str | None = None
    reason: str = "provider asked to reconnect"


@dataclass(frozen=True, slots=True)
class Fail:
    """End this connection. ``final``: the provider forbids retrying; the stream stops as
    failed at once. Otherwise it reconnects by the usual rules (``permanent`` counts as a
    refusal: three in a row stop the stream)."""

    reason: str
    final: bool = True
    permanent: bool = True


@dataclass(frozen=True, slots=True)
class Spawn:
    """Run ``start()`` as a task of this connection (cancelled when it closes). A
    ``ConnectionEnded`` it raises ends the connection with that outcome."""

    start: Callable[[], Awaitable[None]]


Action = Store | Quarantine | Control | Reply | Ready | Reconnect | Fail | Spawn
Verdict = Action | Sequence[Action] | None
"""What ``on_message`` returns: one action, several (done in order), or None (``Control``)."""


# --- what a session sees ------------------------------------------------------------------


@dataclass(slots=True)
class Received:
    """One message as received: ``data`` (the frame), ``text``, and ``json`` parsed on first
    use (None when the message is not JSON)."""

    data: bytes
    _json: object = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def text(self) -> str:
        """The message as text (invalid UTF-8 replaced)."""
        return self.data.decode("utf-8", "replace")

    @property
    def json(self) -> object:
        """The parsed JSON document, or None."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = orjson.loads(self.data)
            except orjson.JSONDecodeError:
                self._json = None
        return self._json


@dataclass(slots=True)
class SessionContext:
    """What a session knows about its connection.

    ``checkpoint`` is the stream's committed cursor when the connection was made; ``follow``
    the URL a ``Reconnect`` named (None on an ordinary connect); ``state`` is shared by every
    connection of the slot; ``http`` is the process's client session (loopback in tests).
    """

    stream: str
    slot: int
    url: str
    headers: dict[str, str]
    checkpoint: str | None
    http: aiohttp.ClientSession
    state: dict[str, Any]
    follow: str | None = None
    stall_timeout: float = 30.0
    note: Callable[[str], None] | None = None

    def report(self, text: str) -> None:
        """Log ``text`` as a warning and show it as the stream's reason in ``longline status``
        (e.g. a revoked subscription)."""
        log.warning("stream %s: %s", self.stream, text)
        if self.note is not None:
            self.note(text)


class SessionLink(Protocol):
    """The connection as a session sees it (``on_open`` and spawned tasks)."""

    async def send(self, text: str) -> None:
        """Send one text message on the connection."""

    def act(self, action: Action) -> None:
        """Do ``action`` as if ``on_message`` had returned it (e.g. ``Fail`` from a task)."""

    @property
    def last_rx(self) -> float:
        """Loop time of the last frame received."""
        ...


class NoOptions(BaseModel):
    """A session without options of its own."""

    model_config = ConfigDict(extra="forbid")


class Session:
    """Subclass and override what the conversation needs; the defaults connect to the
    stream's ``url`` with its headers and store every message keyed by its hash.

    ``Options`` is the pydantic model of the session's config options (everything under
    ``session:`` except ``preset``/``factory``): ``longline check`` validates them and names
    the field (``streams[0].session.app_token: ...``). ``secret_options`` lists the options
    whose values are never shown.
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    secret_options: ClassVar[tuple[str, ...]] = ()
    needs_url: ClassVar[bool] = True
    """False when the session finds its URL itself (the stream may leave out ``url``)."""
    max_redundancy: ClassVar[int | None] = None
    """The most connections the provider allows per stream (``redundancy`` is checked)."""
    close_code: ClassVar[int] = 1000
    """The WebSocket close code longline closes with (Discord: not 1000, which ends the
    session)."""
    client_pings: ClassVar[bool] = True
    """False when the provider forbids client traffic (Twitch): no WebSocket pings are sent
    (server pings are still answered)."""
    allows_max_lifetime: ClassVar[bool] = True
    """False when rotating on our own clock would break the conversation (Twitch: a new
    connection means new subscriptions, whose messages have new ids)."""
    stall_limit: float | None = None
    """Set by a session that learns the provider's keepalive period (Twitch's welcome):
    overrides ``stall_timeout`` for this connection."""

    def __init__(self, ctx: SessionContext, options: Any) -> None:
        self.ctx = ctx
        self.options = options

    async def connect_url(self) -> str:
        """The URL to connect to now (called before every connection)."""
        return self.ctx.follow or self.ctx.url

    def connect_headers(self) -> Mapping[str, str]:
        """Headers of the WebSocket handshake."""
        return self.ctx.headers

    async def on_open(self, link: SessionLink) -> None:
        """The WebSocket is open (nothing received yet)."""

    def on_refused(self, outcome: Outcome) -> None:
        """The WebSocket handshake was refused (``outcome.status``: 401, 403, 429...); the
        attempt then ends by the usual rules. E.g. drop a cached credential, so the next
        ``connect_url`` fetches a new one."""

    def on_message(self, msg: Received) -> Verdict:
        """What to do with one received message."""
        from hashlib import blake2b

        return Store(blake2b(msg.data, digest_size=16).hexdigest(), msg.text)

    def on_close(self, code: int | None) -> Fail | None:
        """The provider closed the connection with ``code``: return ``Fail`` to stop (a close
        code that forbids reconnecting), None to reconnect as usual."""
        return None


# --- HTTP helpers for sessions ------------------------------------------------------------


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: object = None,
    data: Mapping[str, str] | str | None = None,
    timeout: float = 10.0,
) -> Any:
    """One HTTP request whose answer is JSON; a refusal raises ``ConnectionEnded`` classified
    like a refused connection (429 with ``Retry-After``, 5xx retried, 401/403 refused)."""
    try:
        async with http.request(
            method,
            url,
            headers=dict(headers or {}),
            json=json,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            if resp.status >= 300:
                body = await body_head(resp.content)
                raise ConnectionEnded(refused(resp.status, None, dict(resp.headers), body))
            raw = await resp.read()
    except ConnectionEnded:
        raise
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
        what = f"{method} {_where(url)}"
        raise ConnectionEnded(
            Outcome(Cause.NETWORK, None, None, f"{what}: {type(e).__name__}")
        ) from None
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        refuse(f"{method} {_where(url)}: the answer is not JSON", permanent=False)


def refuse(reason: str, *, permanent: bool = True, final: bool = False) -> NoReturn:
    """End the connection attempt: a refusal (``permanent``: counts towards stopping), or a
    failure worth retrying; ``final`` stops the stream at once."""
    cause = Cause.PERMANENT if permanent or final else Cause.HTTP_5XX
    raise ConnectionEnded(Outcome(cause, None, None, reason, final=final))


def _where(url: str) -> str:
    """A URL without its query (which may carry a token)."""
    return url.split("?", 1)[0]
