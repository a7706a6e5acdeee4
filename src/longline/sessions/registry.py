"""Where session classes come from: a preset name or a ``package.module:Class`` factory.

Presets are looked up in longline's own table first, then in the ``longline.sessions``
entry-point group, so an installed package adds a preset the way longline's are declared.
Imports happen when a config names the session, never before.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from longline.sessions.base import Session

__all__ = ["PRESETS", "SessionLoadError", "load_factory", "load_preset", "preset_names"]

PRESETS: dict[str, str] = {
    "slack-socket-mode": "longline.sessions.presets.slack:SlackSocketMode",
    "twitch-eventsub": "longline.sessions.presets.twitch:TwitchEventSub",
    "discord-gateway": "longline.sessions.presets.discord:DiscordGateway",
}
"""longline's own presets: name -> ``module:Class``."""

GROUP = "longline.sessions"


class SessionLoadError(Exception):
    """The preset or factory cannot be found or is not a ``Session`` subclass."""


def preset_names() -> list[str]:
    """Every preset name: longline's own, then installed ones."""
    names = list(PRESETS)
    names += sorted(ep.name for ep in entry_points(group=GROUP) if ep.name not in PRESETS)
    return names


def load_preset(name: str) -> type[Session]:
    """The session class of preset ``name``."""
    if name in PRESETS:
        return load_factory(PRESETS[name])
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return _checked(ep.load(), ep.value)
    raise SessionLoadError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")


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
    return _checked(obj, spec)


def _checked(obj: object, spec: str) -> type[Session]:
    if not (isinstance(obj, type) and issubclass(obj, Session)):
        raise SessionLoadError(f"{spec} is not a longline.sessions.Session subclass")
    return obj
