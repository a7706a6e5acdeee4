"""The ``longline`` command line, one module per command group.

``group`` (the ``longline`` group and the error line every command shares), ``common`` (config
loading and helpers), ``options`` (duration and log options), ``capture`` (run, init, check),
``read`` (events, tail, status), ``delivery`` (dispatch, deadletters, replay), ``demo``, ``cost``.

``main`` is loaded on first use: the group registers every command, including those that live
beside their code (``aws``, ``testing``) and import ``cli.options`` themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from longline.cli.group import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from longline.cli.group import main

        return main
    raise AttributeError(f"module 'longline.cli' has no attribute {name!r}")
