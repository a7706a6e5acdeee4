"""longline: capture outbound event streams durably, exactly once.

The Python API (``App``, ``Event``, ...) is imported on first use, so that ``import longline``
(and the command line) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from longline.api import App, Event, Handler, LaneStatus, Status, StreamOptions, StreamStatus
    from longline.config import ConfigError
    from longline.processors.base import ProcessorError

__all__ = [
    "App",
    "ConfigError",
    "Event",
    "Handler",
    "LaneStatus",
    "ProcessorError",
    "Status",
    "StreamOptions",
    "StreamStatus",
    "__version__",
]

_LAZY = {
    "App": "longline.api",
    "Event": "longline.api",
    "Handler": "longline.api",
    "LaneStatus": "longline.api",
    "Status": "longline.api",
    "StreamOptions": "longline.api",
    "StreamStatus": "longline.api",
    "ConfigError": "longline.config",
    "ProcessorError": "longline.processors.base",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'longline' has no attribute {name!r}")
