"""Event stores, chosen by URL scheme: ``sqlite:///path.db``, ``postgresql://...``,
``dynamodb://...``, ``memory://NAME``.

The protocols (one per role, and ``Store``, their union) are in :mod:`longline.stores.base`;
each backend is a sub-package of the same shape (``store.py``, ``delivery.py``, ``leases.py``).
Each scheme is a ``StoreKind`` in the ``longline.stores`` entry-point group (``stores.registry``);
a plugin package adds one by being installed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from longline.plugins import PluginError
from longline.stores.base import DeliveryLog, EventLog, LeaseTable, Outbox, Store, StoreError
from longline.stores.memory import MemoryStore
from longline.stores.registry import REGISTRY, StoreDriverMissing, usage
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


def open_store(url: str, *, create_tables: bool = False, create: bool = True) -> Store:
    """Build (not yet open) the store a URL names; ``async with open_store(url) as store:``
    opens it and closes it.

    ``postgresql://user@host:port/db?schema=NAME`` (also ``postgres://``) and
    ``dynamodb://PREFIX?region=...&endpoint_url=...`` load their driver only when named.
    ``create_tables`` lets a DynamoDB store create missing tables (SQLite and PostgreSQL
    create and migrate their schema on open). A backend whose driver is not installed raises
    :class:`StoreDriverMissing` naming the extra to install. ``create=False`` (the commands
    that only read) refuses a store that does not exist instead of creating one: a SQLite
    file, a PostgreSQL schema or its tables (DynamoDB tables are never created then).

    ``memory://NAME`` is an in-memory store shared by name within this process (``memory://``
    alone: private to the object); see :mod:`longline.stores.memory`.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` follow the SQLAlchemy
    convention (three slashes, then the path). ``?synchronous=FULL`` trades throughput for
    durability across power loss; the default ``NORMAL`` survives process crashes.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in REGISTRY:
        raise StoreError(f"unsupported store URL scheme {scheme or '(none)'!r}; use {usage()}")
    try:
        kind = REGISTRY.get(scheme)
    except PluginError as exc:
        raise StoreError(str(exc)) from None
    return kind.open(url, create_tables=create_tables, create=create)
