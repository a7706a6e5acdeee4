"""Discord Gateway (https://discord.com/developers/docs/events/gateway).

Discord's rules, as followed here:

- ``GET {api_url}/gateway/bot`` (``Authorization: Bot <token>``) gives the URL; connect with
  ``?v=10&encoding=json``;
- ``Hello`` (op 10) gives ``heartbeat_interval``: the first Heartbeat (op 1) after
  ``interval * random()``, then one per interval, each carrying the last sequence number
  received; a Heartbeat request (op 1 from Discord) is answered at once; no Heartbeat ACK
  (op 11) since the previous heartbeat means a zombie connection: close it (not with 1000 or
  1001, which would end the session) and resume;
- a new session starts with Identify (op 2: token, intents); ``READY`` gives ``session_id`` and
  ``resume_gateway_url``; after a drop, Resume (op 6: token, session_id, seq) on
  ``resume_gateway_url`` replays what was missed, ended by ``RESUMED``;
- Reconnect (op 7): connect again and resume; here make-before-break: the successor resumes
  and the old connection closes once ``RESUMED`` arrived;
- Invalid Session (op 9): ``d: true`` -> resume, ``d: false`` -> a new session (Identify);
- close codes 4004 (authentication failed), 4010, 4011, 4012, 4013, 4014 (disallowed
  intents) forbid reconnecting: the stream stops as failed; 4007 (invalid seq) and 4009
  (session timed out) start a new session.

Key: ``<session_id>:<s>`` (``s`` restarts with every session). Cursor: the session id, the
dispatch sequence ``s`` and the resume URL, so a restarted process resumes the session from
the last *committed* event and Discord replays the rest. Stored payload: the dispatch's
``d``; the event type column holds ``t``. ``READY`` and ``RESUMED`` are control.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from longline.core.errors import Cause, Outcome
from longline.core.resume import with_query
from longline.sessions.base import (
    Action,
    Control,
    Fail,
    Quarantine,
    Ready,
    Received,
    Reconnect,
    Reply,
    Session,
    SessionLink,
    Spawn,
    Store,
    Verdict,
    refuse,
    request_json,
)
from longline.transports.base import ConnectionEnded

__all__ = ["DiscordGateway", "DiscordOptions"]

log = logging.getLogger(__name__)

FATAL_CLOSES = {
    4004: "authentication failed",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid API version",
    4013: "invalid intents",
    4014: "disallowed intents",
}
NEW_SESSION_CLOSES = frozenset({4007, 4009})


class DiscordOptions(BaseModel):
    """``session: {preset: discord-gateway, token: ${DISCORD_TOKEN}, intents: 513}``."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1)
    intents: int = Field(ge=0)
    api_url: str = "https://discord.com/api/v10"


class DiscordGateway(Session):
    """One Gateway connection."""

    Options: ClassVar[type[BaseModel]] = DiscordOptions
    secret_options: ClassVar[tuple[str, ...]] = ("token",)
    needs_url: ClassVar[bool] = False
    max_redundancy: ClassVar[int | None] = 1
    allows_max_lifetime: ClassVar[bool] = False
    close_code: ClassVar[int] = 4000  # not 1000/1001: the session stays resumable
    options: DiscordOptions

    def __init__(self, ctx: Any, options: Any) -> None:
        super().__init__(ctx, options)
        state = ctx.state
        if not state.get("started") and ctx.checkpoint:  # a restart: resume the session
            state["started"] = True
            try:
                saved = orjson.loads(ctx.checkpoint)
                state.update(
                    session_id=saved["session_id"], seq=saved["seq"], resume_url=saved["resume"]
                )
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pass
        state["started"] = True  # later connections of the slot never go back to the store
        self._acked = True
        self._link: SessionLink | None = None

    # -- connecting -----------------------------------------------------------------------

    async def connect_url(self) -> str:
        """``resume_gateway_url`` when there is a session to resume, else ``/gateway/bot``."""
        state = self.ctx.state
        url = self.ctx.follow or (state.get("resume_url") if state.get("session_id") else None)
        if not url:
            answer = await request_json(
                self.ctx.http,
                "GET",
                self.options.api_url.rstrip("/") + "/gateway/bot",
                headers={"Authorization": f"Bot {self.options.token}"},
            )
            found = answer.get("url") if isinstance(answer, dict) else None
            if not isinstance(found, str) or not found:
                refuse("GET /gateway/bot: no url in the answer", permanent=False)
            url = found
        url = with_query(with_query(str(url), "v", "10"), "encoding", "json")
        return url

    def connect_headers(self) -> dict[str, str]:
        """The Gateway handshake takes no credentials (Identify carries the token)."""
        return {}

    async def on_open(self, link: SessionLink) -> None:
        """Keep the link for the heartbeat task."""
        self._link = link

    # -- messages -------------------------------------------------------------------------

    def on_message(self, msg: Received) -> Verdict:
        """Opcodes as Discord defines them."""
        doc = msg.json
        if not isinstance(doc, dict) or "op" not in doc:
            return Quarantine("not a Gateway payload", msg.data)
        op, state = doc["op"], self.ctx.state
        if op == 0:
            return self._dispatch(doc, msg)
        if op == 10:
            interval = doc.get("d", {}).get("heartbeat_interval") if doc.get("d") else None
            if not isinstance(interval, int | float) or interval <= 0:
                return Fail("Hello without heartbeat_interval", final=False, permanent=False)
            return [Control(), Spawn(lambda: self._heartbeat(interval / 1000)), self._hello()]
        if op == 11:
            self._acked = True
            return Control()
        if op == 1:
            return [Control(), Reply(self._beat())]
        if op == 7:
            return Reconnect(None, "Discord asked to reconnect (op 7)")
        if op == 9:
            if doc.get("d") is True:
                return Reconnect(None, "Discord: invalid session, resumable (op 9)")
            state.pop("session_id", None)
            state.pop("seq", None)
            return Fail("Discord: invalid session (op 9); identifying anew", False, False)
        return Control()

    def _hello(self) -> Action:
        state, opts = self.ctx.state, self.options
        if state.get("session_id"):
            resume = {
                "token": opts.token,
                "session_id": state["session_id"],
                "seq": state.get("seq"),
            }
            return Reply(orjson.dumps({"op": 6, "d": resume}).decode())
        identify = {
            "token": opts.token,
            "intents": opts.intents,
            "properties": {"os": "linux", "browser": "longline", "device": "longline"},
        }
        return Reply(orjson.dumps({"op": 2, "d": identify}).decode())

    def _dispatch(self, doc: dict[str, Any], msg: Received) -> Verdict:
        state = self.ctx.state
        seq, kind, data = doc.get("s"), doc.get("t"), doc.get("d")
        if isinstance(seq, int):
            state["seq"] = max(seq, state.get("seq") or 0)
        if kind == "READY" and isinstance(data, dict):
            state["session_id"] = data.get("session_id")
            state["resume_url"] = data.get("resume_gateway_url")
            state["seq"] = seq if isinstance(seq, int) else None
            return [Control(), Ready()]
        if kind == "RESUMED":
            return [Control(), Ready()]
        session_id = state.get("session_id")
        if not isinstance(seq, int) or not session_id:
            return Quarantine("dispatch without s or before READY", msg.data)
        cursor = {"session_id": session_id, "seq": seq, "resume": state.get("resume_url")}
        return Store(
            f"{session_id}:{seq}",
            orjson.dumps(data).decode(),
            orjson.dumps(cursor).decode(),
            None,
            str(kind) if kind is not None else None,
        )

    def _beat(self) -> str:
        return orjson.dumps({"op": 1, "d": self.ctx.state.get("seq")}).decode()

    async def _heartbeat(self, interval: float) -> None:
        await asyncio.sleep(interval * random.random())  # the first one jittered
        while True:
            if not self._acked:  # zombie: close (resumable) and resume on a new connection
                detail = "zombie connection: no heartbeat ACK"
                raise ConnectionEnded(Outcome(Cause.STALL, None, None, detail))
            self._acked = False
            assert self._link is not None
            await self._link.send(self._beat())
            await asyncio.sleep(interval)

    def on_close(self, code: int | None) -> Fail | None:
        """Close codes that forbid reconnecting stop the stream; some need a new session."""
        if code in FATAL_CLOSES:
            return Fail(f"Discord closed with {code} ({FATAL_CLOSES[code]})")
        if code in NEW_SESSION_CLOSES:
            self.ctx.state.pop("session_id", None)
            self.ctx.state.pop("seq", None)
        return None
