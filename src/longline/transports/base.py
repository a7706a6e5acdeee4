"""What every transport shares: the sink it pushes into and the connection life cycle.

A transport opens one connection, pushes framed messages into a sink, and returns *why* the
connection ended as an ``Outcome``. It never reconnects: that is the supervisor's job.
Liveness is tracked by ``last_rx`` (loop time of the last byte or frame, keep-alives included)
so a watchdog can abort a stalled connection without a timer per read on the hot path.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

from longline.core.errors import Cause, Outcome
from longline.core.model import Keyed, Message, Oversized, Quarantined
from longline.core.resume import ConnectRequest

if TYPE_CHECKING:
    from ssl import SSLContext

    import aiohttp

Item = Message | Keyed | Quarantined | Oversized | bytes
"""What a framer yields: a ``Message``, a refused ``Oversized`` one, or for transports whose
messages carry nothing but a body (ws, lines) the bare body ``bytes``, which saves making an
object per message on the hot path. ``Keyed`` and
``Quarantined`` ones come from provider sessions."""


class Sink(Protocol):
    """Where a connection pushes what it framed (the stream's writer)."""

    @property
    def backlogged(self) -> bool:
        """True when the caller must ``await drained()`` before reading more (backpressure)."""
        ...

    def push(self, items: Sequence[Item], conn: Connection) -> None:
        """Take framed items from ``conn``; never blocks."""

    async def drained(self) -> None:
        """Return once the backlog is below its limit."""

    @property
    def last_ticket(self) -> int:
        """The ticket of the last event pushed (tickets count events, from 1)."""
        ...

    def after_commit(self, ticket: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` once every event up to ``ticket`` is committed (acknowledge-after-commit);
        never if the writer gives up on it."""

    @property
    def quarantine_ticket(self) -> int:
        """The ticket of the last quarantined item pushed (counted apart from events)."""
        ...

    def after_quarantined(self, ticket: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` once every quarantined item up to ``ticket`` is written; never if the
        writer gives up on it."""


class Framer(Protocol):
    """Bytes in, messages out (``core.sse.SSEParser`` or ``core.lines.LineSplitter``)."""

    def feed(self, chunk: bytes) -> Sequence[Item]: ...

    def close(self) -> None: ...


class Flag:
    """A set-once ``asyncio.Event`` whose waiter list exists only while someone waits.

    ``asyncio.Event`` allocates a deque (~850 bytes) up front; with one per connection that
    is a real share of an idle stream's memory (docs/benchmarks.md).
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True once ``set`` was called."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._set:
            return
        self._set = True
        for fut in self._waiters or ():
            if not fut.done():
                fut.set_result(None)
        self._waiters = None

    async def wait(self) -> bool:
        """Return True once the flag is set."""
        if self._set:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)
        return True


class ConnectionEnded(Exception):
    """Raised inside a transport to end the connection with a classified outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class Connection(ABC):
    """One connection to a provider; subclasses implement ``_open`` and ``_pump``.

    Slotted (a subclass without ``__slots__`` simply gets a ``__dict__`` too): one lives per
    idle stream (docs/benchmarks.md).
    """

    __slots__ = (
        "_abort",
        "connected",
        "first_ticket",
        "last_rx",
        "loop",
        "max_message_size",
        "pushed",
        "request",
        "rx_bytes",
    )

    def __init__(self, request: ConnectRequest, *, max_message_size: int) -> None:
        self.request = request
        self.max_message_size = max_message_size
        self.loop = asyncio.get_running_loop()
        self.last_rx = self.loop.time()
        self.pushed = 0
        self.rx_bytes = 0  # message bytes received (body chunks, WebSocket payloads)
        self.first_ticket: int | None = None
        self.connected = Flag()
        self._abort: Outcome | None = None

    async def run(self, sink: Sink) -> Outcome:
        """Open, then read until the connection ends; always returns (never raises)."""
        try:
            if self._abort is not None:  # stopped before it started: do not connect at all
                return self._abort
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

    async def probe(self) -> Outcome | None:
        """Open (status line or handshake only), then close: None when the provider accepted.

        For ``longline check --connect``; never reads a message.
        """
        try:
            await self._open()
            return None
        except ConnectionEnded as e:
            return e.outcome
        except asyncio.CancelledError:
            raise
        except Exception as e:
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


class MessageConnection(Connection):
    """A connection whose messages reach the sink in bursts, queued in ``_queued`` and pushed
    by ``_push_queued``. aiohttp's WebSocket client (``ws.py``) pushes once ``BURST`` are
    waiting (or the sink is backlogged), or from a callback scheduled for the next loop pass;
    the direct one (``ws_direct.py``) pushes what each read carried, from the read's callback."""

    __slots__ = ("_push_soon", "_queued", "_sink")

    BURST = 512  # queued messages pushed at once without waiting for the pump to pause

    def __init__(self, request: ConnectRequest, *, max_message_size: int) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self._queued: list[Item] = []
        self._push_soon: asyncio.Handle | None = None
        self._sink: Sink | None = None

    def _push_queued(self) -> None:
        self._push_soon = None
        items, self._queued = self._queued, []
        if items and self._sink is not None:
            self._sink.push(items, self)


class NoOptions(BaseModel):
    """The ``options:`` of a transport that has none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    """What the supervisor hands a transport's ``connect`` for one connection."""

    session: aiohttp.ClientSession
    """The runner's HTTP session (shared by every stream; transports without HTTP ignore it)."""
    request: ConnectRequest
    """URL, headers and subscribe messages, with the stored cursor already applied."""
    max_message_size: int
    connect_timeout: float
    ping_interval: float
    """Seconds between keep-alive pings for transports that send them (0: none)."""
    options: BaseModel
    """The stream's ``options:``, validated by the kind's ``options`` model."""
    ssl: SSLContext | bool = True
    """The stream's ``tls:`` as aiohttp's ``ssl=`` (True: the system's verification)."""


@dataclass(frozen=True, slots=True)
class TransportKind:
    """One transport: registered as an entry point in the ``longline.transports`` group.

    ``connect`` builds a (not yet running) ``Connection``; the supervisor runs, watches and
    replaces it. ``url_schemes`` are the schemes a stream's ``url`` may use. ``options`` is the
    pydantic model of the stream's ``options:`` mapping (errors name ``streams[i].options.x``).
    ``sse``: messages carry SSE fields, so ``key``/``cursor: sse-id`` and the ``Last-Event-ID``
    resume apply. ``subscribe``: the transport sends the stream's ``subscribe`` messages after
    connecting (and so supports ``resume: {subscribe: true}``).
    """

    name: str
    connect: Callable[[ConnectSpec], Connection]
    url_schemes: tuple[str, ...]
    options: type[BaseModel] = NoOptions
    sse: bool = False
    subscribe: bool = False
