"""``kind: jsonl-file``: append each event as one JSON line to a file, fsynced per batch."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import orjson

from longline.core.model import StoredEvent
from longline.processors.base import ProcessorError, event_dict
from longline.processors.registry import ProcessorKind, ProcessorSettings


class JsonlFileSettings(ProcessorSettings):
    """``path`` of the file; ``fail_if_exists``: deliveries fail while that file exists."""

    kind: Literal["jsonl-file"]
    path: str
    fsync: bool = True
    fail_if_exists: str | None = None


class JsonlFileProcessor:
    """Appends batches; a batch counts as delivered once it is written (and fsynced)."""

    def __init__(self, settings: JsonlFileSettings) -> None:
        self.settings = settings

    async def start(self) -> None:
        Path(self.settings.path).parent.mkdir(parents=True, exist_ok=True)

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        switch = self.settings.fail_if_exists
        if switch is not None and os.path.exists(switch):
            raise ProcessorError(f"{switch} exists: refusing deliveries")
        data = b"".join(orjson.dumps(event_dict(stream, e)) + b"\n" for e in events)
        await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        with open(self.settings.path, "ab+") as f:
            if f.tell() > 0:  # a line torn by a crash mid-write is closed off, not continued
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(data)
            f.flush()
            if self.settings.fsync:
                os.fsync(f.fileno())

    async def close(self) -> None:
        return None


KIND = ProcessorKind("jsonl-file", JsonlFileSettings, JsonlFileProcessor)
