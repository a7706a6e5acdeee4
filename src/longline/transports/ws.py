"""WebSocket transport (aiohttp): subscribe after connect, our own ping/pong, size limit.

``autoping`` is off so that every frame, pings and pongs included, counts as liveness and
reaches ``last_rx``; we answer server pings ourselves (echoing the payload, as Binance
requires) and send our own pings every ``ping_interval`` so a half-open socket goes quiet and
the stall watchdog catches it. Text frames are kept as bytes (``decode_text=False``): the keyer
decodes once, and invalid UTF-8 is quarantined instead of killing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Literal

import aiohttp

from longline.core.errors import Cause, Outcome
from longline.core.model import Message, Oversized
from longline.core.resume import ConnectRequest
from longline.transports.base import Connection, ConnectionEnded, Sink
from longline.transports.http import refused
from longline.transports.stream import _describe

_TOO_BIG = re.compile(r"size (\d+) exceeds")


class WSConnection(Connection):
    """One WebSocket connection."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        request: ConnectRequest,
        *,
        max_message_size: int,
        connect_timeout: float,
        ping_interval: float | None,
    ) -> None:
        super().__init__(request, max_message_size=max_message_size)
        self.session = session
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._ws: aiohttp.ClientWebSocketResponse[Literal[False]] | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        try:
            self._ws = await self.session.ws_connect(
                self.request.url,
                headers=self.request.headers,
                autoping=False,
                autoclose=True,
                compress=15,
                max_msg_size=self.max_message_size,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                receive_timeout=None,
            )
        except aiohttp.WSServerHandshakeError as e:
            headers = dict(e.headers or {})
            raise ConnectionEnded(refused(e.status, e.message, headers)) from None
        except aiohttp.ClientError as e:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, _describe(e))) from None
        except TimeoutError:
            raise ConnectionEnded(Outcome(Cause.NETWORK, None, None, "connect timed out")) from None
        ws = self._ws
        for text in self.request.subscribe:
            await ws.send_str(text)
        if self.ping_interval:
            self._pinger = asyncio.create_task(self._ping_loop(ws, self.ping_interval))

    async def _ping_loop(
        self, ws: aiohttp.ClientWebSocketResponse[Literal[False]], interval: float
    ) -> None:
        n = 0
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            while not ws.closed:
                await asyncio.sleep(interval)
                n += 1
                await ws.ping(str(n).encode())

    async def _pump(self, sink: Sink) -> Outcome:
        ws = self._ws
        assert ws is not None
        loop = self.loop
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while True:
            msg = await ws.receive()
            self.last_rx = loop.time()
            kind = msg.type
            if kind is text or kind is binary:
                sink.push([Message(msg.data)], self)
                if sink.backlogged:
                    await sink.drained()
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

    def _error_outcome(self, error: object, sink: Sink) -> Outcome:
        text = str(error)
        match = _TOO_BIG.search(text)
        if match is not None or getattr(error, "code", None) == 1009:
            size = int(match.group(1)) if match else self.max_message_size + 1
            sink.push([Oversized(size)], self)
            return Outcome(Cause.TOO_BIG, None, None, "message too big (1009)")
        return Outcome(
            Cause.NETWORK,
            None,
            None,
            _describe(error) if isinstance(error, BaseException) else text[:200],
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
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
