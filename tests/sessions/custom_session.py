"""A session written the way a third party would, for the ``factory:`` tests: it resumes the
local provider's ws feed from the stream's checkpoint and keys by the event id."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from longline.core.resume import with_query
from longline.sessions import Control, Received, Session, Store, Verdict

SEEN: list[str | None] = []  # the checkpoint each connection was made with


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = 1  # store only ids divisible by this


class ResumingFeed(Session):
    Options: ClassVar[type[BaseModel]] = Options
    options: Options

    async def connect_url(self) -> str:
        SEEN.append(self.ctx.checkpoint)
        if self.ctx.checkpoint is None:
            return self.ctx.url
        return with_query(self.ctx.url, "since", self.ctx.checkpoint)

    def on_message(self, msg: Received) -> Verdict:
        doc = msg.json
        if not isinstance(doc, dict) or doc["id"] % self.options.every:
            return Control()
        return Store(str(doc["id"]), msg.text, cursor=str(doc["id"]))
