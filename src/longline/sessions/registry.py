"""Where session classes come from: a preset name or a ``package.module:Class`` factory.

Presets are entry points of the ``longline.sessions`` group (``longline.plugins``), longline's
own declared in ``pyproject.toml`` like a plugin's, each naming a ``Session`` subclass. They
go through the same ``Registry`` as transports, stores and processors, so a broken plugin is a
one-line error naming it, and a name registered twice is refused rather than shadowed. The
class is imported when a config names the preset, never before.
"""

from __future__ import annotations

import importlib

from longline.plugins import PluginError, Registry
from longline.sessions.base import Session

__all__ = ["REGISTRY", "SessionLoadError", "load_factory", "load_preset", "preset_names"]

REGISTRY: Registry[type[Session]] = Registry(
    "longline.sessions", "session preset", Session, classes=True
)
"""Every preset by name: longline's own, then those of installed plugins."""


class SessionLoadError(Exception):
    """The preset or factory cannot be found or is not a ``Session`` subclass."""


def preset_names() -> list[str]:
    """Every preset name: longline's own, then installed ones."""
    return REGISTRY.names()


def load_preset(name: str) -> type[Session]:
    """The session class of preset ``name``."""
    try:
        return REGISTRY.get(name)
    except PluginError as e:
        raise SessionLoadError(str(e)) from None


def load_factory(spec: str) -> type[Session]:
    """The class named ``package.module:Class``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SessionLoadError("must be package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SessionLoadError(f"cannot import {module_name}: {e}") from None
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SessionLoadError(f"{module_name} has no {attr}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Session)):
        raise SessionLoadError(f"{spec} is not a longline.sessions.Session subclass")
    return obj
