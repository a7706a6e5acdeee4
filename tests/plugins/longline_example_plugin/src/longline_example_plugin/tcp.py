"""``transport: tcp-lines``: newline-delimited messages read from a plain TCP socket."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from longline.core.errors import Cause, Outcome
from longline.core.lines import LineSplitter
from longline.transports.base import (
    Connection,
    ConnectionEnded,
    ConnectSpec,
    Sink,
    TransportKind,
)


class TcpLinesOptions(BaseModel):
    """``options:`` of a ``tcp-lines`` stream."""

    model_config = ConfigDict(extra="forbid")

    read_size: int = Field(default=65536, ge=1, le=16 * 1024 * 1024)


class TcpLinesConnection(Connection):
    """One TCP connection: send the subscribe lines, then split what arrives into lines."""

    def __init__(self, spec: ConnectSpec) -> None:
        super().__init__(spec.request, max_message_size=spec.max_message_size)
        assert isinstance(spec.options, TcpLinesOptions)
        self.read_size = spec.options.read_size
        self.connect_timeout = spec.connect_timeout
        self.splitter = LineSplitter(spec.max_message_size)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        parts = urlsplit(self.request.url)
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port), self.connect_timeout
            )
        except (OSError, TimeoutError) as e:
            detail = f"connect failed: {type(e).__name__}"
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, detail)) from None
        for line in self.request.subscribe:
            self._writer.write(line.encode() + b"\n")
        await self._writer.drain()

    async def _pump(self, sink: Sink) -> Outcome:
        assert self._reader is not None
        try:
            while chunk := await self._reader.read(self.read_size):
                self.last_rx = self.loop.time()
                items = self.splitter.split(chunk)
                if items:
                    sink.push(items, self)
                    if sink.backlogged:
                        await sink.drained()
        except ConnectionError as e:
            return self.aborted or Outcome(Cause.NETWORK, None, None, type(e).__name__)
        finally:
            self.splitter.close()
        return self.aborted or Outcome(Cause.CLOSED_BY_PEER, None, None, "end of stream")

    def _force_close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()

    async def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


KIND = TransportKind(
    "tcp-lines", TcpLinesConnection, ("tcp",), options=TcpLinesOptions, subscribe=True
)
