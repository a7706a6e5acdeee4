"""The transport connection a stream's config asks for (shared by the supervisor and
``longline check --connect``)."""

from __future__ import annotations

import aiohttp

from longline.config import StreamConfig
from longline.core.resume import ConnectRequest
from longline.transports.base import Connection
from longline.transports.stream import LinesConnection, SSEConnection
from longline.transports.tls import ssl_for
from longline.transports.ws import WSConnection


def connection_for(
    cfg: StreamConfig, session: aiohttp.ClientSession, request: ConnectRequest
) -> Connection:
    """A (not yet opened) connection of ``cfg.transport`` for ``request``."""
    timeout = max(cfg.stall_timeout, 5.0)
    ssl = ssl_for(cfg.tls)
    if cfg.transport == "ws":
        return WSConnection(
            session,
            request,
            max_message_size=cfg.max_message_size,
            connect_timeout=timeout,
            ping_interval=cfg.ping_interval,
            ssl=ssl,
        )
    kind = SSEConnection if cfg.transport == "sse" else LinesConnection
    return kind(
        session, request, max_message_size=cfg.max_message_size, connect_timeout=timeout, ssl=ssl
    )
