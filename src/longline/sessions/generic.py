"""The session that configuration describes: the building blocks of ``session:`` without a
preset or factory (docs/sessions.md).

- ``connect_url``: an HTTP request before every connection; the URL is at ``url_path`` in its
  JSON answer. Refusals follow the connection rules (429 ``Retry-After``, 401/403 refused).
- ``control``: messages that are protocol, not data: not stored (they count as liveness).
- ``reply``: a message sent back when a received one matches; when the received message is
  stored or quarantined, the reply waits for that write (acknowledge-after-commit).
- ``reconnect``: a message that asks for a new connection: open the successor (to the URL at
  ``url_path`` in the message, else a fresh ``connect_url``), close this one once the
  successor received its first message.
- ``payload_path``: store only that part of the message; the stream's ``key`` and ``cursor``
  paths still read the whole message (the envelope).
- ``auth``: an OAuth2 client-credentials token for the ``connect_url`` request and the
  handshake, refreshed before it expires, once at once when the ``connect_url`` request
  answers 401, and for the next attempt when the handshake does; every token is registered
  as a secret (redacted from logs and stored text).
"""

from __future__ import annotations

import functools
import re
import time
from typing import Annotated, Any, ClassVar, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from longline.core.errors import Outcome
from longline.core.keys import JsonPath, Keyer, PathNotFound, parse_json_path
from longline.core.model import Message, Quarantined
from longline.core.secrets import add_secrets
from longline.sessions.base import (
    Action,
    Control,
    Quarantine,
    Ready,
    Received,
    Reconnect,
    Reply,
    Session,
    Store,
    Verdict,
    refuse,
    request_json,
)
from longline.transports.base import ConnectionEnded

__all__ = ["GenericOptions", "GenericSession", "render"]

_PLACEHOLDER = re.compile(r"\{(\$[^{}]*)\}")
TOKEN_MARGIN = 60.0  # seconds before expiry a token is refreshed


@functools.lru_cache(maxsize=256)
def _compiled(expr: str) -> JsonPath:
    return parse_json_path(expr)


def _path(v: str) -> str:
    parse_json_path(v)  # raises ValueError naming the problem
    return v


JsonPathText = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class When(_Strict):
    """A message matches when the value at ``path`` equals ``equals``, or (``exists``) is
    present at all."""

    path: JsonPathText
    equals: str | int | float | bool | None = None
    exists: StrictBool | None = None

    @field_validator("path")
    @classmethod
    def _valid(cls, v: str) -> str:
        return _path(v)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.equals is None) == (self.exists is None):
            raise ValueError("set exactly one of equals or exists")
        return self

    def matches(self, doc: object) -> bool:
        try:
            value = _compiled(self.path).get(doc)
        except PathNotFound:
            return self.exists is False
        if self.exists is not None:
            return self.exists
        return value == self.equals


class Rule(_Strict):
    """``{when: {...}}``."""

    when: When


class ReplyRule(Rule):
    """``{when: {...}, send: TEMPLATE}``: ``{$.path}`` takes that value of the message."""

    send: str = Field(min_length=1)

    @field_validator("send")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        for m in _PLACEHOLDER.finditer(v):
            _path(m.group(1))
        return v


class ReconnectRule(Rule):
    """``{when: {...}, url_path: $.reconnect_url}`` (no ``url_path``: a fresh connect_url)."""

    url_path: str | None = None

    @field_validator("url_path")
    @classmethod
    def _valid(cls, v: str | None) -> str | None:
        return v if v is None else _path(v)


class ConnectUrl(_Strict):
    """The HTTP request that gives the URL of each connection."""

    method: Literal["GET", "POST", "PUT"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | None = None
    url_path: str = "$.url"

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError("must use http:// or https://")
        return v

    @field_validator("url_path")
    @classmethod
    def _valid(cls, v: str) -> str:
        return _path(v)


class Auth(_Strict):
    """OAuth2 client credentials (RFC 6749 section 4.4)."""

    kind: Literal["oauth2-client-credentials"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError("must use http:// or https://")
        return v


class GenericOptions(_Strict):
    """``session:`` without ``preset`` or ``factory``."""

    connect_url: ConnectUrl | None = None
    reply: list[ReplyRule] = Field(default_factory=list)
    control: list[Rule] = Field(default_factory=list)
    reconnect: list[ReconnectRule] = Field(default_factory=list)
    payload_path: str | None = None
    auth: Auth | None = None

    @field_validator("payload_path")
    @classmethod
    def _valid(cls, v: str | None) -> str | None:
        return v if v is None else _path(v)


def render(template: str, doc: object) -> str:
    """``template`` with every ``{$.path}`` replaced by that value of ``doc``: a string is
    inserted JSON-escaped without its quotes (safe inside a JSON string), anything else as
    JSON text; a missing path raises ``PathNotFound``."""

    def sub(m: re.Match[str]) -> str:
        value = _compiled(m.group(1)).get(doc)
        if isinstance(value, str):
            return orjson.dumps(value).decode()[1:-1]
        return orjson.dumps(value).decode()

    return _PLACEHOLDER.sub(sub, template)


class GenericSession(Session):
    """The session the ``session:`` building blocks describe."""

    Options: ClassVar[type[BaseModel]] = GenericOptions
    secret_options: ClassVar[tuple[str, ...]] = ()
    options: GenericOptions
    keyer: Keyer  # set by the connection factory: the stream's key and cursor, on the envelope
    token_margin: ClassVar[float] = TOKEN_MARGIN
    """Seconds before its expiry a token is replaced (a class attribute: tests shorten it)."""

    def __init__(self, ctx: Any, options: Any) -> None:
        super().__init__(ctx, options)
        self._seen_first = False
        self._payload = parse_json_path(options.payload_path) if options.payload_path else None

    # -- auth -----------------------------------------------------------------------------

    async def _token(self, renew: bool = False) -> str | None:
        auth = self.options.auth
        if auth is None:
            return None
        cached = self.ctx.state.get("oauth2")
        if not renew and isinstance(cached, tuple) and cached[1] > time.time() + self.token_margin:
            return str(cached[0])
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
        }
        if auth.scope:
            form["scope"] = auth.scope
        answer = await request_json(self.ctx.http, "POST", auth.token_url, data=form)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            refuse("auth: the token answer has no access_token")
        # An echo in an error body or a traceback never shows it. The token before the one it
        # replaces is forgotten (the one it replaces may still be in flight in a refusal).
        previous = cached[0] if isinstance(cached, tuple) else None
        older = self.ctx.state.get("oauth2_older")
        stale = [older] if isinstance(older, str) and older not in (token, previous) else []
        add_secrets([token], retire=stale)
        self.ctx.state["oauth2_older"] = previous
        expires = answer.get("expires_in", 3600)
        lifetime = float(expires) if isinstance(expires, int | float) else 3600.0
        self.ctx.state["oauth2"] = (token, time.time() + lifetime)
        return token

    def _bearer(self, token: str | None, headers: dict[str, str]) -> dict[str, str]:
        if token is None:
            return headers
        return {**headers, "Authorization": f"Bearer {token}"}

    # -- connecting -----------------------------------------------------------------------

    async def connect_url(self) -> str:
        """The followed URL, else the ``connect_url`` answer, else the stream's ``url``."""
        token = await self._token()
        self._headers = self._bearer(token, dict(self.ctx.headers))
        if self.ctx.follow:
            return self.ctx.follow
        spec = self.options.connect_url
        if spec is None:
            return self.ctx.url
        try:
            answer = await self._connect_request(spec, token)
        except ConnectionEnded as e:
            if e.outcome.status != 401 or self.options.auth is None:
                raise
            token = await self._token(renew=True)  # once on a 401
            self._headers = self._bearer(token, dict(self.ctx.headers))
            answer = await self._connect_request(spec, token)
        try:
            url = parse_json_path(spec.url_path).get(answer)
        except PathNotFound:
            url = None
        if not isinstance(url, str) or not url.lower().startswith(("ws://", "wss://")):
            refuse(f"connect_url: no ws:// or wss:// URL at {spec.url_path}", permanent=False)
        return url

    async def _connect_request(self, spec: ConnectUrl, token: str | None) -> Any:
        body = spec.body
        return await request_json(
            self.ctx.http,
            spec.method,
            spec.url,
            headers=self._bearer(token, spec.headers),
            json=body if isinstance(body, dict) else None,
            data=body if isinstance(body, str) else None,
        )

    def connect_headers(self) -> dict[str, str]:
        """The stream's headers, with the bearer token when ``auth`` is set."""
        return getattr(self, "_headers", dict(self.ctx.headers))

    def on_refused(self, outcome: Outcome) -> None:
        """A handshake refused with 401: the token is no good (revoked, expired early), so
        the next attempt fetches a new one instead of presenting it again."""
        if outcome.status == 401 and self.options.auth is not None:
            self.ctx.state.pop("oauth2", None)

    # -- messages -------------------------------------------------------------------------

    def on_message(self, msg: Received) -> Verdict:
        """Control, reconnect, or store; replies as the rules say."""
        out: list[Action] = []
        if not self._seen_first:  # the successor heard from the provider: it is live
            self._seen_first = True
            out.append(Ready())
        opts = self.options
        doc = msg.json if (opts.control or opts.reply or opts.reconnect) else None
        for rule in opts.reconnect:
            if rule.when.matches(doc):
                url = None
                if rule.url_path is not None:
                    try:
                        found = _compiled(rule.url_path).get(doc)
                        url = found if isinstance(found, str) else None
                    except PathNotFound:
                        pass
                out += [Control(), *self._replies(doc), Reconnect(url)]
                return out
        if any(rule.when.matches(doc) for rule in opts.control):
            out += [Control(), *self._replies(doc)]
            return out
        ack = self._ack(doc)
        keyed = self.keyer.make(Message(msg.data), time.time())
        if isinstance(keyed, Quarantined):
            out.append(Quarantine(keyed.reason, msg.data, ack))
            return out
        payload = keyed.payload
        if self._payload is not None:
            try:
                inner = self._payload.get(msg.json)
            except PathNotFound:
                out.append(Quarantine(f"payload path {self._payload} not found", msg.data, ack))
                return out
            payload = inner if isinstance(inner, str) else orjson.dumps(inner).decode()
        out.append(Store(keyed.key, payload, keyed.cursor, ack))
        return out

    def _ack(self, doc: object) -> str | None:
        """The reply to a kept (stored or quarantined) message: the first matching rule's,
        sent once the message is committed, so a crash before it means a redelivery."""
        for reply in self._replies(doc):
            if isinstance(reply, Reply):
                return reply.text
        return None

    def _replies(self, doc: object) -> list[Action]:
        out: list[Action] = []
        for rule in self.options.reply:
            if rule.when.matches(doc):
                try:
                    out.append(Reply(render(rule.send, doc)))
                except PathNotFound:
                    continue
        return out
