"""DynamoDB store (boto3): transactions in parts, 400 KB quarantine, leases."""

from __future__ import annotations

from urllib.parse import urlsplit

from longline.stores.base import Store
from longline.stores.registry import StoreKind, driver_missing

__all__ = ["KIND"]


def _check(url: str) -> None:
    if not urlsplit(url).netloc:
        raise ValueError("dynamodb:// needs a table name: dynamodb://TABLE?region=...")


def _open(url: str, *, create_tables: bool, create: bool) -> Store:
    try:
        from longline.stores.dynamodb.store import from_url  # boto3: only when named
    except ModuleNotFoundError as exc:
        raise driver_missing(exc, "a dynamodb:// store", "dynamodb", "boto3", "botocore") from None

    # Missing tables are refused unless create_tables; a command that only reads never asks.
    return from_url(url, create_tables=create_tables and create)


KIND = StoreKind("dynamodb", _open, "dynamodb://TABLE", _check)
"""``dynamodb://TABLE`` (entry point ``longline.stores``)."""
