"""TLS for a stream's connections: one shared ``SSLContext`` per distinct ``tls`` setting,
and a read buffer sized for TLS records.

A context holds the CA store (hundreds of parsed certificates): made per connection it would
cost far more memory than the connection itself. Streams without ``tls`` use aiohttp's own
shared default context (``True``).

asyncio's TLS transport (``asyncio/sslproto.py``) gives every connection a receive buffer of
``SSLProtocol.max_size``, 256 KiB, allocated up front and kept for the connection's life,
although a TLS record carries at most 16 KiB: an idle ``wss://`` stream cost ~330 KB, ten times
a ``ws://`` one. ``fit_tls_read_buffer`` lowers that class attribute to ``TLS_READ_BUFFER`` (16 KiB)
(reads then take a few more, smaller steps under load); docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import asyncio.sslproto
import functools
import ssl
from typing import Protocol

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
    """Make asyncio's TLS connections opened from now on use a ``size``-byte read buffer
    (default ``TLS_READ_BUFFER``) instead of 256 KiB. Process-wide; never raises it."""
    size = TLS_READ_BUFFER if size is None else size
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, size)


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
