"""TLS for a stream's connections: one shared ``SSLContext`` per distinct ``tls`` setting,
and a read buffer sized for TLS records.

A context holds the CA store (hundreds of parsed certificates): made per connection it would
cost far more memory than the connection itself. Streams without ``tls`` use aiohttp's own
shared default context (``True``).

asyncio's TLS transport (``asyncio/sslproto.py``) gives every connection a receive buffer of
``SSLProtocol.max_size``, 256 KiB, allocated up front and kept for the connection's life,
although a TLS record carries at most 16 KiB: an idle ``wss://`` stream cost ~330 KB, ten times
a ``ws://`` one. ``fit_tls_read_buffer`` lowers that class attribute to ``TLS_READ_BUFFER`` (16 KiB)
and makes the connections of one thread share one such buffer: on a selector event loop the
socket is read into it and copied into the connection's TLS input in the same call
(``get_buffer``, ``recv_into``, ``buffer_updated``), so it is free again before any other
connection reads. The read size stays at one record, not 256 KiB, because each connection's
TLS input (an ``ssl.MemoryBIO``) keeps for good the capacity of the largest read it was given.
docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import asyncio.selector_events
import asyncio.sslproto
import functools
import ssl
import threading
from typing import Any, Protocol

__all__ = ["TLS_READ_BUFFER", "TlsSettings", "fit_tls_read_buffer", "ssl_for"]

TLS_READ_BUFFER = 16 * 1024  # a TLS record's payload at most; a longer one takes two reads


class TlsSettings(Protocol):
    """A stream's ``tls`` setting as transports read it (the config's ``TlsConfig``)."""

    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...
    @property
    def verify(self) -> bool: ...


def fit_tls_read_buffer(size: int | None = None) -> None:
    """Make asyncio's TLS connections opened from now on read into a ``size``-byte buffer
    (default ``TLS_READ_BUFFER``; never more than asyncio's 256 KiB) shared by the connections
    of the thread. Process-wide and idempotent."""
    size = TLS_READ_BUFFER if size is None else size
    proto = asyncio.sslproto.SSLProtocol
    proto.max_size = min(proto.max_size, size)
    if getattr(proto.__init__, "_longline_shared", False):
        return
    stock_init = proto.__init__

    @functools.wraps(stock_init)
    def init(self: asyncio.sslproto.SSLProtocol, loop: Any, *args: Any, **kwargs: Any) -> None:
        stock_init(self, loop, *args, **kwargs)
        # Only where reads are synchronous: a proactor loop (Windows) reads into the buffer
        # in the background, and several connections would then overlap in it.
        if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
            buf, view = _shared_buffer(self.max_size)
            self._ssl_buffer = buf  # type: ignore[attr-defined]
            self._ssl_buffer_view = view  # type: ignore[attr-defined]

    init._longline_shared = True  # type: ignore[attr-defined]
    proto.__init__ = init  # type: ignore[method-assign]


_local = threading.local()


def _shared_buffer(size: int) -> tuple[bytearray, memoryview]:
    """This thread's TLS read buffer (one per thread: each event loop runs in its own)."""
    shared: tuple[bytearray, memoryview] | None = getattr(_local, "buffer", None)
    if shared is None or len(shared[0]) < size:
        buf = bytearray(size)
        shared = _local.buffer = (buf, memoryview(buf))
    return shared


@functools.lru_cache(maxsize=64)
def _context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, verify: bool
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def ssl_for(tls: TlsSettings | None) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's ``ssl=`` for a stream with this ``tls`` setting."""
    if tls is None:
        return True
    return _context(tls.ca_file, tls.cert_file, tls.key_file, tls.verify)
