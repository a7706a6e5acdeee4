"""Slack Socket Mode (https://api.slack.com/apis/socket-mode).

Slack's rules, as followed here:

- every connection gets a fresh single-use URL from ``POST {api_url}/apps.connections.open``
  with the app-level token (``xapp-...``); an ``{"ok": false}`` answer names the error
  (``invalid_auth``, ``not_allowed_token_type``... refuse the stream; others are retried);
- ``hello`` opens the conversation (control; the connection is ready);
- every envelope is acknowledged with ``{"envelope_id": ...}``, here only once its event is
  committed: Slack redelivers an unacknowledged Events API event in a new envelope with a
  ``retry_attempt`` count, so a crash before the commit costs a redelivery, never the event;
- ``disconnect`` with reason ``warning`` (the connection ends in about 10 s) or
  ``refresh_requested`` means: open a new connection now, then close this one (Slack's own
  advice); ``link_disabled`` (Socket Mode was turned off for the app) stops the stream;
  ``too_many_websockets`` ends this connection and reconnects with backoff (a successor opened
  at once would be refused as well);
- Slack allows up to 10 connections per app and delivers each envelope to one of them:
  ``redundancy`` opens several.

Key: an Events API event's own ``event_id`` (the same in every redelivery), else the
``envelope_id``. Stored payload: the envelope's ``payload`` (for Events API, the
``event_callback`` with ``event_id`` and ``event``); the event type column holds the envelope
type (``events_api``, ``slash_commands``, ``interactive``).
"""

from __future__ import annotations

from typing import ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from longline.sessions.base import (
    Control,
    Fail,
    Quarantine,
    Ready,
    Received,
    Reconnect,
    Session,
    Store,
    Verdict,
    refuse,
    request_json,
)

__all__ = ["SlackOptions", "SlackSocketMode"]

PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "invalid_app_id",
    }
)


class SlackOptions(BaseModel):
    """``session: {preset: slack-socket-mode, app_token: ${SLACK_APP_TOKEN}}``."""

    model_config = ConfigDict(extra="forbid")
    app_token: str = Field(min_length=1)
    api_url: str = "https://slack.com/api"
    debug_reconnects: bool = False


class SlackSocketMode(Session):
    """One Socket Mode connection."""

    Options: ClassVar[type[BaseModel]] = SlackOptions
    secret_options: ClassVar[tuple[str, ...]] = ("app_token",)
    max_redundancy: ClassVar[int | None] = 10
    needs_url: ClassVar[bool] = False
    options: SlackOptions

    async def connect_url(self) -> str:
        """``apps.connections.open``: a fresh URL for every connection."""
        opts = self.options
        answer = await request_json(
            self.ctx.http,
            "POST",
            opts.api_url.rstrip("/") + "/apps.connections.open",
            headers={
                "Authorization": f"Bearer {opts.app_token}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error") if isinstance(answer, dict) else None
            why = f"apps.connections.open: {error or 'no ok in the answer'}"
            refuse(why, permanent=error in PERMANENT_ERRORS)
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            refuse("apps.connections.open: no url in the answer", permanent=False)
        if opts.debug_reconnects:
            url += ("&" if "?" in url else "?") + "debug_reconnects=true"
        return str(url)

    def connect_headers(self) -> dict[str, str]:
        """The URL carries a single-use ticket; the handshake needs nothing else."""
        return {}

    def on_message(self, msg: Received) -> Verdict:
        """hello -> ready; disconnect -> reconnect; envelopes -> stored, acked after commit."""
        doc = msg.json
        if not isinstance(doc, dict):
            return Quarantine("not a JSON object", msg.data)
        kind = doc.get("type")
        if kind == "hello":
            return [Control(), Ready()]
        if kind == "disconnect":
            reason = str(doc.get("reason") or "")
            if reason == "link_disabled":
                return Fail("Slack disabled Socket Mode for this app (link_disabled)")
            if reason == "too_many_websockets":  # a successor would be refused too: back off
                return Fail(
                    "Slack: too many connections for this app", final=False, permanent=False
                )
            return Reconnect(None, f"Slack asked to reconnect ({reason or 'no reason'})")
        envelope_id = doc.get("envelope_id")
        if not isinstance(envelope_id, str) or not envelope_id:
            return Control()  # not an envelope, nothing to acknowledge: protocol chatter
        payload = doc.get("payload")
        key = envelope_id
        if kind == "events_api" and isinstance(payload, dict):
            event_id = payload.get("event_id")
            if isinstance(event_id, str) and event_id:
                key = event_id
        ack = orjson.dumps({"envelope_id": envelope_id}).decode()
        body = orjson.dumps(payload).decode() if payload is not None else msg.text
        return Store(key, body, None, ack, str(kind) if kind is not None else None)
