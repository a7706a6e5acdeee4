"""Twitch EventSub over WebSocket (https://dev.twitch.tv/docs/eventsub/handling-websocket-events/).

Twitch's rules, as followed here:

- connect to ``url`` (``?keepalive_timeout_seconds=N``, 10..600, when set); the first message
  is ``session_welcome`` with the session id; subscriptions are created with that id by
  ``POST {api_url}/eventsub/subscriptions`` (``Authorization: Bearer``, ``Client-Id``) within
  the welcome's deadline (Twitch closes an unused connection with 4003). A refused
  subscription (400, 401, 403) ends the connection as refused (three in a row stop the stream),
  429 waits ``Retry-After``; 409 (it already exists) is fine;
- ``session_keepalive`` is control; silence longer than the welcome's
  ``keepalive_timeout_seconds`` means the connection is lost (the stall limit of the
  connection, plus a second of slack);
- ``session_reconnect`` names ``reconnect_url``: connect there, wait for its welcome, then let
  the old connection go. Subscriptions carry over: the new connection creates none;
- ``revocation`` is logged and shown as the stream's reason in ``longline status``;
- a client must send nothing but pongs (close 4001): no client pings, no messages.

Key: ``metadata.message_id`` (Twitch resends a notification it is unsure about with the same
id). Stored payload: the message's ``payload`` (``subscription`` and ``event``); the event type
column holds ``metadata.subscription_type``. Twitch does not replay: what it sent while no
connection was subscribed is not recoverable, and a second connection would hold its own
subscriptions whose messages have their own ids, so ``redundancy`` is 1 and ``max_lifetime``
is refused (Twitch's reconnects already come without a gap).
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from longline.core.resume import with_query
from longline.sessions.base import (
    Action,
    Control,
    Quarantine,
    Ready,
    Received,
    Reconnect,
    Session,
    SessionLink,
    Spawn,
    Store,
    Verdict,
    request_json,
)
from longline.transports.base import ConnectionEnded

__all__ = ["Subscription", "TwitchEventSub", "TwitchOptions"]

SLACK = 1.0  # seconds beyond keepalive_timeout_seconds before a silent connection is dropped


class Subscription(BaseModel):
    """One EventSub subscription: ``{type, version, condition}``."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    version: str = "1"
    condition: dict[str, Any] = Field(default_factory=dict)


class TwitchOptions(BaseModel):
    """``session: {preset: twitch-eventsub, client_id, token, subscriptions: [...]}``."""

    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1)
    token: str = Field(min_length=1)
    subscriptions: list[Subscription] = Field(min_length=1)
    api_url: str = "https://api.twitch.tv/helix"
    url: str = "wss://eventsub.wss.twitch.tv/ws"
    keepalive_timeout_seconds: int | None = Field(default=None, ge=10, le=600)


class TwitchEventSub(Session):
    """One EventSub WebSocket connection."""

    Options: ClassVar[type[BaseModel]] = TwitchOptions
    secret_options: ClassVar[tuple[str, ...]] = ("token",)
    needs_url: ClassVar[bool] = False
    max_redundancy: ClassVar[int | None] = 1
    client_pings: ClassVar[bool] = False
    allows_max_lifetime: ClassVar[bool] = False
    options: TwitchOptions

    async def connect_url(self) -> str:
        """The ``reconnect_url`` Twitch named, else ``url`` with the keepalive period."""
        if self.ctx.follow:
            return self.ctx.follow
        url = self.options.url
        if self.options.keepalive_timeout_seconds is not None:
            url = with_query(url, "keepalive_timeout_seconds",
                             str(self.options.keepalive_timeout_seconds))  # fmt: skip
        return url

    def connect_headers(self) -> dict[str, str]:
        """The handshake needs no credentials (the subscriptions do)."""
        return {}

    async def on_open(self, link: SessionLink) -> None:
        """Remember the link: the subscribing task reports through it."""
        self._link = link

    def on_message(self, msg: Received) -> Verdict:
        """welcome -> subscribe (or not, after a reconnect); notifications -> stored."""
        doc = msg.json
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(meta, dict):
            return Quarantine("not an EventSub message", msg.data)
        kind = meta.get("message_type")
        payload = doc.get("payload")
        if kind == "session_welcome":
            return self._welcome(payload)
        if kind == "session_keepalive":
            return Control()
        if kind == "notification":
            message_id = meta.get("message_id")
            if not isinstance(message_id, str) or not message_id:
                return Quarantine("notification without metadata.message_id", msg.data)
            kind_name = meta.get("subscription_type")
            body = orjson.dumps(payload).decode()
            return Store(message_id, body, None, None, kind_name if kind_name else None)
        if kind == "session_reconnect":
            session = payload.get("session") if isinstance(payload, dict) else None
            url = session.get("reconnect_url") if isinstance(session, dict) else None
            return Reconnect(url if isinstance(url, str) else None, "Twitch asked to reconnect")
        if kind == "revocation":
            sub = payload.get("subscription") if isinstance(payload, dict) else None
            what = sub if isinstance(sub, dict) else {}
            self.ctx.report(
                f"Twitch revoked subscription {what.get('type')} ({what.get('status')})"
            )
            return Control()
        return Control()

    def _welcome(self, payload: object) -> list[Action]:
        session = payload.get("session") if isinstance(payload, dict) else None
        if not isinstance(session, dict) or not isinstance(session.get("id"), str):
            return [Control()]
        keepalive = session.get("keepalive_timeout_seconds")
        if isinstance(keepalive, int | float) and keepalive > 0:
            self.stall_limit = float(keepalive) + SLACK
        if self.ctx.follow:  # a reconnect: the subscriptions carried over
            return [Control(), Ready()]
        session_id = str(session["id"])
        return [Control(), Spawn(lambda: self._subscribe(session_id))]

    async def _subscribe(self, session_id: str) -> None:
        opts = self.options
        headers = {
            "Authorization": f"Bearer {opts.token}",
            "Client-Id": opts.client_id,
            "Content-Type": "application/json",
        }
        for sub in opts.subscriptions:
            body = {
                "type": sub.type,
                "version": sub.version,
                "condition": sub.condition,
                "transport": {"method": "websocket", "session_id": session_id},
            }
            try:
                await request_json(
                    self.ctx.http,
                    "POST",
                    opts.api_url.rstrip("/") + "/eventsub/subscriptions",
                    headers=headers,
                    json=body,
                )
            except ConnectionEnded as e:
                if e.outcome.status != 409:  # 409: it exists already, as wanted
                    raise
        self._link.act(Ready())
