"""SQLite store: one file, WAL, atomic append + checkpoint; the default."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from longline.stores.base import Store, StoreError
from longline.stores.registry import StoreKind
from longline.stores.sqlite.store import SQLiteStore

__all__ = ["KIND", "SQLiteStore", "sqlite_path"]


def sqlite_path(store_url: str) -> Path:
    """The database file of a ``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` URL.

    Relative paths are relative to the working directory; ``sqlite:///:memory:`` gives
    ``Path(":memory:")``. Raises ValueError (without quoting the URL) for anything else.
    """
    prefix = "sqlite:///"
    if not store_url.lower().startswith(prefix) or len(store_url) == len(prefix):
        raise ValueError("expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
    return Path(store_url[len(prefix) :])


def _check(url: str) -> None:
    if str(sqlite_path(url)) == ":memory:":
        raise ValueError("sqlite:///:memory: keeps nothing after the process exits; use a file")


def _open(url: str, *, create_tables: bool, create: bool) -> Store:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.fragment:
        raise StoreError("a SQLite store URL looks like sqlite:///path/to/file.db")
    path = unquote(parts.path[1:])
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", "NORMAL")
    if options:
        raise StoreError(f"unknown SQLite store option(s): {', '.join(sorted(options))}")
    return SQLiteStore(path, synchronous=synchronous, create=create)


KIND = StoreKind("sqlite", _open, "sqlite:///PATH", _check)
"""``sqlite:///PATH`` (entry point ``longline.stores``)."""
