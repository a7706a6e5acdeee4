"""Missing optional packages become MissingExtra; every other import error stays a bug."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest

from longline.cli.common import user_error
from longline.core.extras import MissingExtra, missing_extra, require
from longline.stores import StoreDriverMissing, StoreError, open_store


class _Block(MetaPathFinder):
    """Makes ``names`` unimportable, as if not installed."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@pytest.fixture
def block(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Block]:
    """Block modules for one test; the modules it hides from are re-imported afterwards."""
    finder = _Block()
    saved = dict(sys.modules)
    for name in list(sys.modules):
        if name.split(".")[0] == "asyncpg" or name.startswith("longline.stores.postgres"):
            monkeypatch.delitem(sys.modules, name)
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)
        sys.modules.update(saved)


def test_missing_extra_matches_the_module_and_its_submodules_only() -> None:
    exc = ModuleNotFoundError(name="asyncpg.pool")
    found = missing_extra(exc, "a store", "postgres", "asyncpg")
    assert str(found) == (
        "a store needs asyncpg, which is not installed: pip install 'longline[postgres]'"
    )
    assert missing_extra(ModuleNotFoundError(name="asyncpgx"), "s", "postgres", "asyncpg") is None
    assert missing_extra(ModuleNotFoundError(name=None), "s", "postgres", "asyncpg") is None


def test_require_names_the_pip_distribution() -> None:
    require("x", "y", "json")  # installed: no error
    with pytest.raises(MissingExtra, match=r"needs no_such_mod_zz, which is not installed: "
                       r"pip install 'longline\[zz\]'"):
        require("x", "zz", "json", "no_such_mod_zz")


def test_open_store_translates_a_missing_driver(block: _Block) -> None:
    block.names = ("asyncpg",)
    with pytest.raises(StoreDriverMissing) as info:
        open_store("postgres://u@127.0.0.1/db")
    assert isinstance(info.value, StoreError)  # callers catching StoreError see it too
    assert user_error(info.value) == (
        "store: a postgres:// store needs asyncpg, which is not installed:"
        " pip install 'longline[postgres]'"
    )


def test_an_unrelated_missing_module_keeps_its_traceback() -> None:
    exc = ModuleNotFoundError("No module named 'helper'", name="helper")
    assert missing_extra(exc, "s", "postgres", "asyncpg") is None
    assert user_error(exc) is None  # the CLI re-raises it: a bug shows its traceback
