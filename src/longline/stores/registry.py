"""The store registry: store URL schemes to their ``StoreKind``.

Kinds are entry points in the ``longline.stores`` group (``longline.plugins``), named by URL
scheme: ``sqlite``, ``postgresql`` (and its alias ``postgres``) and ``dynamodb`` are longline's
own, declared like a plugin's. A kind's module must not import its driver at import time:
``open`` does, so a missing driver only matters to a config that names that scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from longline.core.extras import MissingExtra, missing_extra
from longline.plugins import PluginError, Registry
from longline.stores.base import Store, StoreError

__all__ = ["REGISTRY", "StoreDriverMissing", "StoreKind", "StoreOpener", "driver_missing", "usage"]


class StoreDriverMissing(MissingExtra, StoreError):
    """The store URL names a backend whose driver is not installed (asyncpg, boto3)."""


def driver_missing(exc: ModuleNotFoundError, what: str, extra: str, *modules: str) -> Exception:
    """``StoreDriverMissing`` naming the extra when ``exc`` is about ``modules``, else ``exc``."""
    found = missing_extra(exc, what, extra, *modules)
    if found is None:
        return exc
    return StoreDriverMissing(found.what, found.package, found.extra)


class StoreOpener(Protocol):
    """Builds a (not yet opened) store. ``create_tables``: a store whose schema is not created
    on open may create it; ``create=False``: the commands that only read, so a store that does
    not exist yet must not be created (refuse instead)."""

    def __call__(self, url: str, *, create_tables: bool, create: bool) -> Store: ...


@dataclass(frozen=True, slots=True)
class StoreKind:
    """One store backend: registered as an entry point named by its URL scheme.

    ``open`` (a ``StoreOpener``) builds the (not yet opened) store; ``check(url)`` raises
    ``ValueError`` with a message that never quotes the URL when the config's ``store`` is
    wrong for this backend; ``usage`` is how a URL of this kind looks, for error messages.
    """

    scheme: str
    open: StoreOpener
    usage: str
    check: Callable[[str], None] | None = None


REGISTRY: Registry[StoreKind] = Registry("longline.stores", "store", StoreKind, lambda k: k.scheme)
"""Every store kind by URL scheme: longline's own, then those of installed plugins."""


def usage() -> str:
    """``sqlite:///PATH, postgresql://... or dynamodb://TABLE``: what a store URL may be."""
    shown: list[str] = []
    for name in REGISTRY.names():
        try:
            kind = REGISTRY.get(name)
            text = kind.usage if kind.scheme == name else f"{name}://..."
        except PluginError:
            text = f"{name}://..."
        shown.append(text)
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else "".join(shown)
