"""What every transport shares: the sink it pushes into and the connection life cycle.

A transport opens one connection, pushes framed messages into a sink, and returns *why* the
connection ended as an ``Outcome``. It never reconnects: that is the supervisor's job.
Liveness is tracked by ``last_rx`` (loop time of the last byte or frame, keep-alives included)
so a watchdog can abort a stalled connection without a timer per read on the hot path.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Protocol

from longline.core.errors import Cause, Outcome
from longline.core.model import Message, Oversized
from longline.core.resume import ConnectRequest

Item = Message | Oversized


class Sink(Protocol):
    """Where a connection pushes what it framed (the stream's writer)."""

    @property
    def backlogged(self) -> bool:
        """True when the caller must ``await drained()`` before reading more (backpressure)."""
        ...

    def push(self, items: list[Item], conn: Connection) -> None:
        """Take framed items from ``conn``; never blocks."""

    async def drained(self) -> None:
        """Return once the backlog is below its limit."""


class ConnectionEnded(Exception):
    """Raised inside a transport to end the connection with a classified outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class Connection(ABC):
    """One connection to a provider; subclasses implement ``_open`` and ``_pump``."""

    def __init__(self, request: ConnectRequest, *, max_message_size: int) -> None:
        self.request = request
        self.max_message_size = max_message_size
        self.loop = asyncio.get_running_loop()
        self.last_rx = self.loop.time()
        self.pushed = 0
        self.first_ticket: int | None = None
        self.connected = asyncio.Event()
        self._abort: Outcome | None = None

    async def run(self, sink: Sink) -> Outcome:
        """Open, then read until the connection ends; always returns (never raises)."""
        try:
            await self._open()
            if self._abort is not None:
                return self._abort
            self.last_rx = self.loop.time()
            self.connected.set()
            return await self._pump(sink)
        except ConnectionEnded as e:
            return self._abort or e.outcome
        except asyncio.CancelledError:
            raise
        except Exception as e:  # network errors of every flavour end up here
            if self._abort is not None:
                return self._abort
            return Outcome(Cause.NETWORK, None, None, f"{type(e).__name__}: {e}")
        finally:
            await self._close()

    def abort(self, outcome: Outcome) -> None:
        """End the connection from outside (stall watchdog, rotation, shutdown)."""
        if self._abort is None:
            self._abort = outcome
        self._force_close()

    @property
    def aborted(self) -> Outcome | None:
        """The outcome given to ``abort``, if any."""
        return self._abort

    @abstractmethod
    async def _open(self) -> None:
        """Connect and complete the handshake, or raise ``ConnectionEnded``."""

    @abstractmethod
    async def _pump(self, sink: Sink) -> Outcome:
        """Read until the connection ends."""

    @abstractmethod
    def _force_close(self) -> None:
        """Close the underlying socket now, so a pending read returns."""

    @abstractmethod
    async def _close(self) -> None:
        """Release resources; called once when ``run`` ends."""
