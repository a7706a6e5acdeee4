"""PostgreSQL store (asyncpg): versioned migrations, LISTEN/NOTIFY, leases."""

from __future__ import annotations

from longline.stores.base import Store
from longline.stores.registry import StoreKind, driver_missing

__all__ = ["KIND"]


def _open(url: str, *, create_tables: bool, create: bool) -> Store:
    try:
        from longline.stores.postgres.store import from_url  # asyncpg: only when named
    except ModuleNotFoundError as exc:
        scheme = url.split("://", 1)[0].lower()
        raise driver_missing(exc, f"a {scheme}:// store", "postgres", "asyncpg") from None
    return from_url(url, create=create)


KIND = StoreKind("postgresql", _open, "postgresql://...")
"""``postgresql://`` and ``postgres://`` (entry points ``longline.stores``)."""
