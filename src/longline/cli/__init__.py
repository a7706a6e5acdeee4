"""The ``longline`` command line, one module per command group.

``main`` (the group and the error line every command shares), ``common`` (config loading and
helpers), ``options`` (duration and log-level options), ``capture`` (run, init, check), ``read``
(events, status), ``delivery`` (dispatch, deadletters, replay), ``demo`` and ``cost``.
"""

from longline.cli.main import main

__all__ = ["main"]
