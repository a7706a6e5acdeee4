"""HTTP streaming bodies (SSE and lines): one long GET read chunk by chunk.

Reading chunks and framing them ourselves is several times faster than aiohttp's per-line
iteration (docs/architecture.md), and lets ``max_message_size`` apply while reading. Each kind
has two connections with the same framing (``SSEFraming``, ``LinesFraming``): the direct one
(``http_direct``, ~12 KB per idle stream instead of ~22), and, through a proxy the environment
names (``HTTP(S)_PROXY``), aiohttp's ``ClientSession.get`` (``HTTPStreamConnection``), which
speaks to proxies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ssl import SSLContext
from typing import NamedTuple

import aiohttp

from longline.core.errors import Cause, Outcome
from longline.core.lines import LineSplitter
from longline.core.resume import ConnectRequest
from longline.core.sse import SSEParser
from longline.transports.base import (
    Connection,
    ConnectionEnded,
    ConnectSpec,
    Framer,
    Item,
    Sink,
    TransportKind,
)
from longline.transports.http import body_head, describe, env_proxy, refused
from longline.transports.http_direct import DirectStreamConnection


class HTTPStreamConnection(Connection):
    """A GET whose response body is an endless stream of framed messages."""

    __slots__ = ("_resp", "connect_timeout", "framer", "session", "ssl")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: ConnectRequest,
        *,
        max_message_size: int,
        connect_timeout: float,
        ssl: SSLContext | bool = True,
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.session = session
        self.connect_timeout = connect_timeout
        self.ssl = ssl
        self.framer = self.make_framer()
        self._resp: aiohttp.ClientResponse | None = None

    def make_framer(self) -> Framer:
        raise NotImplementedError

    def accept_header(self) -> str:
        """The ``Accept`` header sent."""
        return "*/*"

    async def _open(self) -> None:
        headers = {
            "Accept": self.accept_header(),
            "Cache-Control": "no-cache",
            **self.request.headers,
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_read=None)
        try:
            resp = await self.session.get(
                self.request.url, headers=headers, timeout=timeout, ssl=self.ssl
            )
        except aiohttp.ClientError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, describe(e))) from None
        except TimeoutError:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, "connect timed out")) from None
        self._resp = resp
        if resp.status != 200:
            body = await body_head(resp.content)
            outcome = refused(resp.status, resp.reason, resp.headers, body)
            resp.release()
            raise ConnectionEnded(outcome)

    async def _pump(self, sink: Sink) -> Outcome:
        assert self._resp is not None
        content = self._resp.content
        framer = self.framer
        loop = self.loop
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                self.last_rx = loop.time()
                self.rx_bytes += len(chunk)
                items = framer.feed(chunk)
                if items:
                    sink.push(items, self)
                    if sink.backlogged:
                        await sink.drained()
        except (aiohttp.ClientError, ConnectionError) as e:
            framer.close()
            return self.aborted or Outcome(Cause.NETWORK, None, None, describe(e))
        framer.close()
        return self.aborted or Outcome(Cause.CLOSED_BY_PEER, None, None, "end of stream")

    def _force_close(self) -> None:
        if self._resp is not None:
            self._resp.close()

    async def _close(self) -> None:
        if self._resp is not None:
            self._resp.close()


class SSEState(NamedTuple):
    """What a browser's ``EventSource`` keeps from one connection to the next."""

    last_event_id: str
    retry: int | None  # milliseconds, from the last valid ``retry`` field


class SSEFraming:
    """Server-Sent Events (WHATWG framing by ``core.sse``), for either connection.

    The parser starts from ``request.last_event_id`` and ``request.retry`` (the previous
    connection's ``state``), so both survive reconnects as in a browser.
    """

    __slots__ = ()
    framer: Framer
    request: ConnectRequest
    max_message_size: int

    def accept_header(self) -> str:
        """The ``Accept`` header sent."""
        return "text/event-stream"

    def make_framer(self) -> SSEParser:
        request = self.request
        return SSEParser(
            self.max_message_size, last_event_id=request.last_event_id, retry=request.retry
        )

    @property
    def state(self) -> SSEState:
        """The last event ID in force and the reconnection time, as of the last event read."""
        parser = self.framer
        assert isinstance(parser, SSEParser)
        return SSEState(parser.last_event_id, parser.retry)


class LinesFraming:
    """NDJSON or plain text lines; blank keep-alive lines are not events."""

    __slots__ = ()
    max_message_size: int

    def make_framer(self) -> Framer:
        return _BareLines(self.max_message_size)


class SSEConnection(SSEFraming, HTTPStreamConnection):
    """SSE through aiohttp's client (through a proxy)."""

    __slots__ = ()


class LinesConnection(LinesFraming, HTTPStreamConnection):
    """Lines through aiohttp's client (through a proxy)."""

    __slots__ = ()


class DirectSSEConnection(SSEFraming, DirectStreamConnection):
    """SSE over the direct connection."""

    __slots__ = ()


class DirectLinesConnection(LinesFraming, DirectStreamConnection):
    """Lines over the direct connection."""

    __slots__ = ()


class _BareLines:
    """``LineSplitter.split`` as a framer: lines come out as bare ``bytes``, not ``Message``."""

    __slots__ = ("_splitter",)

    def __init__(self, max_message_size: int) -> None:
        self._splitter = LineSplitter(max_message_size)

    def feed(self, chunk: bytes) -> Sequence[Item]:
        return self._splitter.split(chunk)

    def close(self) -> None:
        self._splitter.close()


def _direct_or_aiohttp(
    direct: type[DirectStreamConnection], proxied: type[HTTPStreamConnection]
) -> Callable[[ConnectSpec], Connection]:
    """A transport's factory: the ``direct`` connection, or, through a proxy the environment
    names, the ``proxied`` one on aiohttp's client (which speaks to proxies)."""

    def connect(spec: ConnectSpec) -> Connection:
        if env_proxy(spec.request.url) is None:
            return direct(
                spec.request,
                max_message_size=spec.max_message_size,
                connect_timeout=spec.connect_timeout,
                ssl=spec.ssl,
            )
        return proxied(
            spec.session,
            spec.request,
            max_message_size=spec.max_message_size,
            connect_timeout=spec.connect_timeout,
            ssl=spec.ssl,
        )

    return connect


SSE = TransportKind(
    "sse", _direct_or_aiohttp(DirectSSEConnection, SSEConnection), ("http", "https"), sse=True
)
"""``transport: sse`` (entry point ``longline.transports``)."""
LINES = TransportKind(
    "lines", _direct_or_aiohttp(DirectLinesConnection, LinesConnection), ("http", "https")
)
"""``transport: lines`` (entry point ``longline.transports``)."""
