"""The transport connection a stream's config asks for (shared by the supervisor and
``longline check --connect``): the transport registry's kind builds it."""

from __future__ import annotations

import aiohttp

from longline.config import StreamConfig
from longline.core.keys import Keyer
from longline.core.resume import ConnectRequest
from longline.sessions.base import Session, SessionContext
from longline.sessions.connection import SessionConnection
from longline.sessions.generic import GenericSession
from longline.transports.base import Connection, ConnectSpec
from longline.transports.registry import REGISTRY as TRANSPORTS
from longline.transports.tls import ssl_for


def connection_for(
    cfg: StreamConfig,
    session: aiohttp.ClientSession,
    request: ConnectRequest,
    ctx: SessionContext | None = None,
) -> Connection:
    """A (not yet opened) connection of ``cfg.transport`` for ``request``; for a stream with a
    ``session``, one driven by a new session made with ``ctx`` (default: a fresh one)."""
    timeout = max(cfg.stall_timeout, 5.0)
    ssl = ssl_for(cfg.tls)
    if cfg.session is not None:
        if ctx is None:
            ctx = SessionContext(
                cfg.name,
                0,
                request.url,
                dict(request.headers),
                None,
                session,
                {},
                stall_timeout=cfg.stall_timeout,
            )
        return SessionConnection(
            session,
            request,
            make_session(cfg, ctx),
            max_message_size=cfg.max_message_size,
            connect_timeout=timeout,
            ping_interval=cfg.ping_interval,
            ssl=ssl,
        )
    spec = ConnectSpec(
        session=session,
        request=request,
        max_message_size=cfg.max_message_size,
        connect_timeout=timeout,
        ping_interval=cfg.ping_interval,
        options=cfg.transport_options,
        ssl=ssl,
    )
    return TRANSPORTS.get(cfg.transport).connect(spec)


def make_session(cfg: StreamConfig, ctx: SessionContext) -> Session:
    """A new session of the stream's kind, for one connection."""
    assert cfg.session is not None
    made = cfg.session.session_class(ctx, cfg.session.options)
    if isinstance(made, GenericSession):  # the stream's key and cursor, read on the envelope
        made.keyer = Keyer(cfg.key, cfg.cursor, "ws")
    return made
