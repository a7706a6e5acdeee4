"""A WebSocket connection driven by a ``Session``: the I/O side of a provider conversation.

It asks the session for the URL before connecting, hands every received message to
``on_message`` and does the actions it returns. Acknowledgements (``Store.ack``,
``Quarantine.ack``) wait for the writer's commit callback, so a provider never hears "got it"
for an event that a crash could still lose. Outgoing messages go through one sender task, in
order. ``retire`` lets a connection being replaced send the acknowledgements it still owes
before it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext

import aiohttp

from longline.core.errors import Cause, Outcome
from longline.core.model import Keyed, Quarantined
from longline.core.resume import ConnectRequest, with_query
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
    Spawn,
    Store,
)
from longline.transports.base import ConnectionEnded, Flag, Sink
from longline.transports.ws import WSConnection

log = logging.getLogger(__name__)
RETIRE_WAIT = 2.0  # seconds a replaced connection may spend sending the acks it owes


def fail_outcome(fail: Fail) -> Outcome:
    """The connection outcome of a session's ``Fail``."""
    cause = Cause.PERMANENT if fail.permanent or fail.final else Cause.CLOSED_BY_PEER
    return Outcome(cause, None, None, fail.reason, final=fail.final)


class SessionConnection(WSConnection):
    """One WebSocket connection of a session stream."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        request: ConnectRequest,
        session: Session,
        *,
        max_message_size: int,
        connect_timeout: float,
        ping_interval: float | None,
        ssl: SSLContext | bool = True,
    ) -> None:
        super().__init__(
            http,
            request,
            max_message_size=max_message_size,
            connect_timeout=connect_timeout,
            ping_interval=ping_interval if session.client_pings else None,
            ssl=ssl,
        )
        self.conv = session  # self.session is the HTTP client (WSConnection)
        self.close_code = session.close_code
        self.ready = Flag()  # the session said Ready: a predecessor may close
        self.reconnect: asyncio.Future[Reconnect] = self.loop.create_future()
        self._outbox: deque[str] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._owed = 0  # acks waiting for their commit
        self._failed: Outcome | None = None

    @property
    def stall_limit(self) -> float | None:
        """The session's own stall limit (the provider's keepalive period), if it set one."""
        return self.conv.stall_limit

    # -- SessionLink ----------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Queue ``text`` to be sent after what is already queued."""
        self._enqueue(text)

    def act(self, action: Action) -> None:
        """Do one action outside ``on_message`` (from ``on_open`` or a spawned task)."""
        self._do(action, None)

    # -- opening --------------------------------------------------------------------------

    async def _open(self) -> None:
        url = await self.conv.connect_url()
        if self.request.resume_query is not None:  # resume wherever the session connects
            url = with_query(url, *self.request.resume_query)
        headers = dict(self.conv.connect_headers())
        self.request = dataclasses.replace(self.request, url=url, headers=headers)
        try:
            await super()._open()
        except ConnectionEnded as e:
            if e.outcome.status is not None:  # refused by the provider, not the network
                self.conv.on_refused(e.outcome)
            raise
        self._sender = self.loop.create_task(self._send_loop())
        await self.conv.on_open(self)
        if self._failed is not None:
            raise ConnectionEnded(self._failed)

    # -- reading --------------------------------------------------------------------------

    async def _pump(self, sink: Sink) -> Outcome:
        self._sink = sink
        ws = self._ws
        assert ws is not None
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while True:
            msg = await ws.receive()
            self.last_rx = self.loop.time()
            kind = msg.type
            if kind is text or kind is binary:
                verdict = self.conv.on_message(Received(msg.data))
                if verdict is None:
                    continue
                for action in verdict if isinstance(verdict, Sequence) else (verdict,):
                    self._do(action, sink)
                if self._failed is not None:
                    return self.aborted or self._failed
                if sink.backlogged:
                    await sink.drained()
            elif kind is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            elif kind is aiohttp.WSMsgType.PONG:
                continue
            elif kind is aiohttp.WSMsgType.ERROR:
                return self.aborted or self._error_outcome(msg.data, sink)
            else:  # CLOSE, CLOSING, CLOSED
                if self.aborted is not None:
                    return self.aborted
                code = ws.close_code
                fail = self.conv.on_close(code)
                if fail is not None:
                    return fail_outcome(fail)
                detail = f"closed by peer (code {code})" if code else "connection closed"
                return Outcome(Cause.CLOSED_BY_PEER, None, None, detail)

    def _do(self, action: Action, sink: Sink | None) -> None:
        if isinstance(action, Store):
            sink = sink or self._sink
            if sink is None:
                raise RuntimeError("Store before the connection reads")
            sink.push([Keyed(action.key, action.payload, action.cursor, action.event)], self)
            if action.ack is not None:
                self._owed += 1
                sink.after_commit(sink.last_ticket, functools.partial(self._acked, action.ack))
        elif isinstance(action, Quarantine):
            sink = sink or self._sink
            if sink is not None:
                sink.push([Quarantined(action.reason, action.raw, time.time())], self)
                if action.ack is not None:
                    self._owed += 1
                    done = functools.partial(self._acked, action.ack)
                    sink.after_quarantined(sink.quarantine_ticket, done)
        elif isinstance(action, Control):
            pass
        elif isinstance(action, Reply):
            self._enqueue(action.text)
        elif isinstance(action, Ready):
            self.ready.set()
        elif isinstance(action, Reconnect):
            if not self.reconnect.done():
                log.info("%s: %s", self.conv.ctx.stream, action.reason)
                self.reconnect.set_result(action)
        elif isinstance(action, Spawn):
            task: asyncio.Task[None] = self.loop.create_task(_run(action.start))
            self._tasks.add(task)
            task.add_done_callback(self._spawned_done)
        elif isinstance(action, Fail):
            self._failed = fail_outcome(action)
            if self._sink is not None and sink is None:  # from a task: end the read loop
                self.abort(self._failed)

    def _spawned_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, ConnectionEnded):
            self.abort(error.outcome)
        elif error is not None:
            log.error("%s: session task failed: %r", self.conv.ctx.stream, error)
            self.abort(Outcome(Cause.NETWORK, None, None, f"session task failed: {error!r}"))

    # -- writing --------------------------------------------------------------------------

    def _acked(self, text: str) -> None:
        """The event is committed: its acknowledgement may go."""
        self._owed -= 1
        self._enqueue(text)

    def _enqueue(self, text: str) -> None:
        self._outbox.append(text)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _send_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            while self._outbox:
                text = self._outbox[0]
                try:
                    await ws.send_str(text)
                except (ConnectionError, aiohttp.ClientError, RuntimeError):
                    return  # the read loop sees the close
                self._outbox.popleft()
            self._wake = self.loop.create_future()
            await self._wake

    async def retire(
        self, flush: Callable[[], Awaitable[None]], timeout: float = RETIRE_WAIT
    ) -> None:
        """Before this connection is closed on purpose: commit now (``flush``) what it
        received, so the acknowledgements it owes go out, then let the sender send them; for
        up to ``timeout`` seconds. A message that arrives after the flush stays unacknowledged
        and the provider redelivers it elsewhere."""
        deadline = self.loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flush(), timeout)
        while self._outbox and self.loop.time() < deadline:
            if self._ws is None or self._ws.closed:
                return
            await asyncio.sleep(0.005)

    # -- closing --------------------------------------------------------------------------

    async def _close(self) -> None:
        for task in [*self._tasks, *([self._sender] if self._sender else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._sender] if self._sender else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(code=self.close_code), 2.0)
        await super()._close()


async def _run(start: Callable[[], Awaitable[None]]) -> None:
    await start()
