"""Optional dependencies ("extras"): a missing one is a line naming what to install.

A PostgreSQL store needs asyncpg, a DynamoDB store boto3, a ``redis`` processor redis-py, and
so on. Without the package, Python would report a ``ModuleNotFoundError`` traceback deep in an
import chain; longline translates it where the feature is chosen (``open_store``,
``build_processor``) into :class:`MissingExtra`, whose message says which extra to install.
"""

from __future__ import annotations

import importlib.util

__all__ = ["MissingExtra", "missing_extra", "require"]


_DISTRIBUTIONS = {"nats": "nats-py"}  # import name -> what pip calls it, where they differ


class MissingExtra(Exception):
    """A feature the config asks for needs an optional package that is not installed."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        name = _DISTRIBUTIONS.get(package, package)
        super().__init__(
            f"{what} needs {name}, which is not installed: pip install 'longline[{extra}]'"
        )
        self.what, self.package, self.extra = what, package, extra


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken __spec__
        return False


def require(what: str, extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every top-level module in ``modules`` is importable.

    Only checks; the caller imports the module where it uses it.
    """
    for module in modules:
        if not _installed(module):
            raise MissingExtra(what, module, extra)


def missing_extra(
    exc: ModuleNotFoundError, what: str, extra: str, *modules: str
) -> MissingExtra | None:
    """The :class:`MissingExtra` for ``exc`` when it is about one of ``modules``, else None.

    ``exc.name`` is the module that could not be found (``asyncpg`` or ``asyncpg.pool``); an
    unrelated missing module is a real bug and must keep its traceback.
    """
    name = exc.name or ""
    for module in modules:
        if name == module or name.startswith(module + "."):
            return MissingExtra(what, module, extra)
    return None
