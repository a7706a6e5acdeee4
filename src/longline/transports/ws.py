"""WebSocket transport (aiohttp): subscribe after connect, our own ping/pong, size limit.

``autoping`` is off so that every frame, pings and pongs included, counts as liveness and
reaches ``last_rx``; we answer server pings ourselves (echoing the payload, as Binance
requires) and send our own pings every ``ping_interval`` so a half-open socket goes quiet and
the stall watchdog catches it. Pings are sent from a timer callback, not a task per connection:
10 000 idle streams should not cost 10 000 sleeping tasks. Text frames are kept as bytes
(``decode_text=False``) and pushed bare: the keyer decodes once, and invalid UTF-8 is
quarantined instead of killing the connection. Messages that aiohttp already holds are pushed
together: each is queued and one ``call_soon`` pushes the queue when the pump next waits for
the socket, so a burst costs one push (keying is per chunk, not per message).
"""

from __future__ import annotations

import asyncio
import contextlib
from ssl import SSLContext
from typing import Literal

import aiohttp
from pydantic import BaseModel, ConfigDict

from longline.core.errors import Cause, Outcome
from longline.core.model import Oversized
from longline.core.resume import ConnectRequest
from longline.transports.base import (
    Connection,
    ConnectionEnded,
    ConnectSpec,
    MessageConnection,
    Sink,
    TransportKind,
)
from longline.transports.http import describe, env_proxy, handshake_body, refused
from longline.transports.ws_direct import TOO_BIG as _TOO_BIG
from longline.transports.ws_direct import DirectWSConnection


class WSOptions(BaseModel):
    """The ``options:`` of a ``ws`` stream (docs/configuration.md#options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compression: bool = True
    """Offer permessage-deflate (RFC 7692). Off, the provider sends every message whole: more
    bytes on the wire, no inflating in longline (docs/benchmarks.md: ws capture's CPU)."""


class WSConnection(MessageConnection):
    """One WebSocket connection."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: ConnectRequest,
        *,
        max_message_size: int,
        connect_timeout: float,
        ping_interval: float | None,
        ssl: SSLContext | bool = True,
        compression: bool = True,
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.session = session
        self.ssl = ssl
        self.compression = compression
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._ws: aiohttp.ClientWebSocketResponse[Literal[False]] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_task: asyncio.Task[None] | None = None
        self._pings = 0

    async def _open(self) -> None:
        try:
            self._ws = await self.session.ws_connect(
                self.request.url,
                headers=self.request.headers,
                autoping=False,
                autoclose=True,
                compress=15 if self.compression else 0,
                max_msg_size=self.max_message_size,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                receive_timeout=None,
                ssl=self.ssl,
                proxy=env_proxy(self.request.url),
            )
        except aiohttp.WSServerHandshakeError as e:
            headers = dict(e.headers or {})
            body = handshake_body(e.request_info.headers)
            raise ConnectionEnded(refused(e.status, None, headers, body)) from None
        except aiohttp.ClientError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, describe(e))) from None
        except TimeoutError:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, "connect timed out")) from None
        ws = self._ws
        for text in self.request.subscribe:
            await ws.send_str(text)
        if self.ping_interval:
            self._ping_timer = self.loop.call_later(self.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        """Timer callback: send one ping (a short-lived task) and schedule the next."""
        ws = self._ws
        if ws is None or ws.closed or not self.ping_interval:
            return
        self._pings += 1
        if self._ping_task is None or self._ping_task.done():
            self._ping_task = self.loop.create_task(self._ping(ws, str(self._pings).encode()))
        self._ping_timer = self.loop.call_later(self.ping_interval, self._ping_due)

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse[Literal[False]], payload: bytes) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await ws.ping(payload)

    async def _pump(self, sink: Sink) -> Outcome:
        self._sink = sink
        try:
            ws = self._ws
            assert ws is not None
            loop = self.loop
            queued = self._queued
            burst = self.BURST
            text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
            while True:
                msg = await ws.receive()
                self.last_rx = loop.time()
                kind = msg.type
                if kind is text or kind is binary:
                    self.rx_bytes += len(msg.data)
                    if self._queued is not queued:  # pushed by the callback meanwhile
                        queued = self._queued
                    queued.append(msg.data)
                    if len(queued) >= burst or sink.backlogged:
                        if self._push_soon is not None:
                            self._push_soon.cancel()
                        self._push_queued()
                        queued = self._queued
                        if sink.backlogged:
                            await sink.drained()
                    elif self._push_soon is None:
                        self._push_soon = loop.call_soon(self._push_queued)
                elif kind is aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                elif kind is aiohttp.WSMsgType.PONG:
                    continue
                elif kind is aiohttp.WSMsgType.ERROR:
                    return self.aborted or self._error_outcome(msg.data, sink)
                else:  # CLOSE, CLOSING, CLOSED
                    code = ws.close_code
                    detail = f"closed by peer (code {code})" if code else "connection closed"
                    return self.aborted or Outcome(Cause.CLOSED_BY_PEER, None, None, detail)
        finally:
            if self._push_soon is not None:
                self._push_soon.cancel()
            self._push_queued()

    def _error_outcome(self, error: object, sink: Sink) -> Outcome:
        text = str(error)
        match = _TOO_BIG.search(text)
        if match is not None or getattr(error, "code", None) == 1009:
            size = int(match.group(1)) if match else self.max_message_size + 1
            self._queued.append(Oversized(size))  # after what came before it
            return Outcome(Cause.TOO_BIG, None, None, "message too big (1009)")
        return Outcome(
            Cause.NETWORK,
            None,
            None,
            describe(error) if isinstance(error, BaseException) else text[:200],
        )

    def _force_close(self) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            # Closing the TCP transport makes a pending receive() return CLOSED at once,
            # without waiting for a close handshake a stalled peer would never answer.
            conn = ws._response.connection
            if conn is not None and conn.transport is not None:
                conn.transport.abort()

    async def _close(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        if self._ping_task is not None:
            self._ping_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ping_task
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)


def _connect(spec: ConnectSpec) -> Connection:
    """A ``DirectWSConnection`` (~4 KB idle instead of ~18 KB), or through a proxy the
    environment names, aiohttp's (which speaks HTTP CONNECT)."""
    options = spec.options
    compression = options.compression if isinstance(options, WSOptions) else True
    if env_proxy(spec.request.url) is None:
        return DirectWSConnection(
            spec.request,
            max_message_size=spec.max_message_size,
            connect_timeout=spec.connect_timeout,
            ping_interval=spec.ping_interval,
            ssl=spec.ssl,
            compression=compression,
        )
    return WSConnection(
        spec.session,
        spec.request,
        max_message_size=spec.max_message_size,
        connect_timeout=spec.connect_timeout,
        ping_interval=spec.ping_interval,
        ssl=spec.ssl,
        compression=compression,
    )


WS = TransportKind("ws", _connect, ("ws", "wss"), options=WSOptions, subscribe=True)
"""``transport: ws`` (entry point ``longline.transports``)."""
