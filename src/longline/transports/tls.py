"""The ``ssl`` argument of a stream's connections: one shared ``SSLContext`` per distinct
``tls`` setting.

A context holds the CA store (hundreds of parsed certificates): made per connection it would
cost far more memory than the connection itself. Streams without ``tls`` use aiohttp's own
shared default context (``True``).
"""

from __future__ import annotations

import functools
import ssl

from longline.config import TlsConfig

__all__ = ["ssl_for"]


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


def ssl_for(tls: TlsConfig | None) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's ``ssl=`` for a stream with this ``tls`` setting."""
    if tls is None:
        return True
    return _context(tls.ca_file, tls.cert_file, tls.key_file, tls.verify)
