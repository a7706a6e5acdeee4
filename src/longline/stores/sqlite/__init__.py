"""SQLite store: one file, WAL, atomic append + checkpoint; the default."""

from longline.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
