"""Event stores, chosen by URL: ``sqlite:///path.db``, ``postgresql://...``, ``dynamodb://...``,
``memory://NAME``.

The protocols (one per role, and ``Store``, their union) are in :mod:`longline.stores.base`;
each backend is a sub-package of the same shape (``store.py``, ``delivery.py``, ``leases.py``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from longline.core.extras import MissingExtra, missing_extra
from longline.stores.base import DeliveryLog, EventLog, LeaseTable, Outbox, Store, StoreError
from longline.stores.memory import MemoryStore
from longline.stores.sqlite.store import SQLiteStore

__all__ = [
    "DeliveryLog",
    "EventLog",
    "LeaseTable",
    "MemoryStore",
    "Outbox",
    "SQLiteStore",
    "Store",
    "StoreDriverMissing",
    "StoreError",
    "open_store",
]


class StoreDriverMissing(MissingExtra, StoreError):
    """The store URL names a backend whose driver is not installed (asyncpg, boto3)."""


def _driver_missing(exc: ModuleNotFoundError, what: str, extra: str, *modules: str) -> Exception:
    found = missing_extra(exc, what, extra, *modules)
    if found is None:
        return exc
    return StoreDriverMissing(found.what, found.package, found.extra)


def open_store(url: str, *, create_tables: bool = False, create: bool = True) -> Store:
    """Build (not yet open) the store a URL names; ``async with open_store(url) as store:``
    opens it and closes it.

    ``postgresql://user@host:port/db?schema=NAME`` (also ``postgres://``) and
    ``dynamodb://PREFIX?region=...&endpoint_url=...`` load their driver only when named.
    ``create_tables`` lets a DynamoDB store create missing tables (SQLite and PostgreSQL
    always create and migrate their schema). A backend whose driver is not installed raises
    :class:`StoreDriverMissing` naming the extra to install. ``create=False`` (the commands
    that only read) refuses a SQLite file that does not exist instead of creating one.

    ``memory://NAME`` is an in-memory store shared by name within this process (``memory://``
    alone: private to the object); see :mod:`longline.stores.memory`.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` follow the SQLAlchemy
    convention (three slashes, then the path). ``?synchronous=FULL`` trades throughput for
    durability across power loss; the default ``NORMAL`` survives process crashes.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("postgresql", "postgres"):
        try:
            from longline.stores.postgres.store import from_url
        except ModuleNotFoundError as exc:
            raise _driver_missing(exc, f"a {scheme}:// store", "postgres", "asyncpg") from None
        return from_url(url)
    if scheme == "dynamodb":
        try:
            from longline.stores.dynamodb.store import from_url as dynamodb_from_url
        except ModuleNotFoundError as exc:
            raise _driver_missing(
                exc, "a dynamodb:// store", "dynamodb", "boto3", "botocore"
            ) from None
        return dynamodb_from_url(url, create_tables=create_tables)
    if scheme == "memory":
        from longline.stores.memory import from_url as memory_from_url

        return memory_from_url(url, create=create)
    if scheme != "sqlite":
        raise StoreError(
            f"unsupported store URL scheme {scheme or '(none)'!r};"
            " use sqlite:///, postgresql://, dynamodb:// or memory://"
        )
    if parts.netloc or not parts.path.startswith("/") or parts.fragment:
        raise StoreError("a SQLite store URL looks like sqlite:///path/to/file.db")
    path = unquote(parts.path[1:])
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", "NORMAL")
    if options:
        raise StoreError(f"unknown SQLite store option(s): {', '.join(sorted(options))}")
    return SQLiteStore(path, synchronous=synchronous, create=create)
