"""``store: example-sqlite:///PATH``: longline's SQLite store under a scheme of its own."""

from __future__ import annotations

from longline.stores.base import Store, StoreError
from longline.stores.registry import StoreKind
from longline.stores.sqlite import SQLiteStore


def _path(url: str) -> str:
    prefix = "example-sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError("expected example-sqlite:///PATH")
    return url[len(prefix) :]


def _check(url: str) -> None:
    _path(url)


def _open(url: str, *, create_tables: bool, create: bool) -> Store:
    try:
        return SQLiteStore(_path(url), create=create)
    except ValueError as e:
        raise StoreError(str(e)) from None


KIND = StoreKind("example-sqlite", _open, "example-sqlite:///PATH", _check)
