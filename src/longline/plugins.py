"""Entry-point registries: how longline finds its transports, stores, processors and sessions.

Every kind, built-in or third-party, is a Python entry point in one of four groups
(``longline.transports``, ``longline.stores``, ``longline.processors``, ``longline.sessions``)
naming a *kind object* (``module:attribute``; for sessions, a ``Session`` subclass). longline's
own kinds are declared in its ``pyproject.toml`` exactly like a plugin's, so a package adds a
kind by being installed.

Loading is lazy: listing the names reads only the installed metadata; a kind's module is imported
when a config names that kind, so a missing optional driver (asyncpg, boto3, a plugin's client
library) matters only to the configs that use it. When longline runs from a source tree whose
metadata is missing or stale (``PYTHONPATH=src``), the built-in entries come from ``BUILTINS``,
the same table as ``pyproject.toml`` (a test keeps the two equal), and load the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar, cast

__all__ = [
    "BUILTINS",
    "GROUPS",
    "PluginError",
    "Registry",
    "spell_list",
]

GROUPS = ("longline.transports", "longline.stores", "longline.processors", "longline.sessions")

BUILTINS: dict[str, dict[str, str]] = {
    "longline.transports": {
        "sse": "longline.transports.stream:SSE",
        "ws": "longline.transports.ws:WS",
        "lines": "longline.transports.stream:LINES",
    },
    "longline.stores": {
        "sqlite": "longline.stores.sqlite:KIND",
        "postgresql": "longline.stores.postgres:KIND",
        "postgres": "longline.stores.postgres:KIND",
        "dynamodb": "longline.stores.dynamodb:KIND",
        "memory": "longline.stores.memory:KIND",
    },
    "longline.processors": {
        "python": "longline.processors.python:KIND",
        "webhook": "longline.processors.webhook:KIND",
        "command": "longline.processors.command:KIND",
        "redis": "longline.processors.redis:KIND",
        "nats": "longline.processors.nats:KIND",
        "sqs": "longline.processors.aws:SQS",
        "sns": "longline.processors.aws:SNS",
        "eventbridge": "longline.processors.aws:EVENTBRIDGE",
        "kinesis": "longline.processors.aws:KINESIS",
    },
    "longline.sessions": {
        "slack-socket-mode": "longline.sessions.presets.slack:SlackSocketMode",
        "twitch-eventsub": "longline.sessions.presets.twitch:TwitchEventSub",
        "discord-gateway": "longline.sessions.presets.discord:DiscordGateway",
    },
}
"""longline's own entry points, as declared in ``pyproject.toml``, in the order they are listed."""

T = TypeVar("T")


class PluginError(Exception):
    """A kind is unknown, registered twice, or failed to load; the message says which."""


def spell_list(names: list[str], word: str = "or") -> str:
    """``'a', 'b' or 'c'``: how an error lists the names to choose from."""
    quoted = [repr(n) for n in names]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


class Registry(Generic[T]):
    """The kinds of one entry-point group, loaded one by one on first use.

    ``kind_type`` is the class every entry must be an instance of or, with ``classes=True``
    (sessions: an entry names a ``Session`` subclass), a subclass of. ``name_of`` reads the name
    a kind object says it has, which must be the entry point's name (or, for aliases such as
    ``postgres``, the name of another entry pointing at the same object); None when kinds carry
    no name of their own.
    """

    def __init__(
        self,
        group: str,
        what: str,
        kind_type: type[Any],
        name_of: Callable[[T], str] | None = None,
        *,
        classes: bool = False,
    ) -> None:
        self.group = group
        self.what = what
        self.kind_type = kind_type
        self.name_of = name_of
        self.classes = classes
        self._entries: dict[str, list[EntryPoint]] | None = None
        self._loaded: dict[str, T] = {}

    def refresh(self) -> None:
        """Forget what was found and loaded (after installing a plugin in-process)."""
        self._entries = None
        self._loaded = {}

    def _found(self) -> dict[str, list[EntryPoint]]:
        if self._entries is None:
            found: dict[str, list[EntryPoint]] = {}
            for ep in entry_points(group=self.group):
                same = found.setdefault(ep.name, [])
                if all(e.value != ep.value for e in same):
                    same.append(ep)
            for name, value in BUILTINS.get(self.group, {}).items():
                same = found.setdefault(name, [])
                if all(e.value != value for e in same):  # metadata missing or stale
                    same.insert(0, EntryPoint(name, value, self.group))
            builtin = list(BUILTINS.get(self.group, {}))
            rest = sorted(n for n in found if n not in builtin)
            self._entries = {n: found[n] for n in builtin + rest}
        return self._entries

    def names(self) -> list[str]:
        """Every registered name: the built-ins in their order, then the others sorted."""
        return list(self._found())

    def builtin_names(self) -> list[str]:
        """longline's own names."""
        return list(BUILTINS.get(self.group, {}))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._found()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown(self, name: str) -> str:
        """The message for a name nobody registered: it lists the names there are."""
        return f"unknown {self.what} {name!r}; available: {', '.join(self.names())}"

    def get(self, name: str) -> T:
        """The kind registered as ``name``, imported on first use; ``PluginError`` otherwise."""
        kind = self._loaded.get(name)
        if kind is not None:
            return kind
        entries = self._found().get(name)
        if not entries:
            raise PluginError(self.unknown(name))
        if len(entries) > 1:
            where = ", ".join(f"{_dist(e)} ({e.value})" for e in entries)
            raise PluginError(f"{self.what} {name!r} is registered more than once: {where}")
        entry = entries[0]
        try:
            obj = entry.load()
        except ImportError as exc:  # a missing driver names the module, never a traceback
            missing = getattr(exc, "name", None) or str(exc)
            raise PluginError(
                f"{self.what} {name!r} cannot be loaded from {entry.value}: "
                f"module {missing!r} is not installed"
            ) from exc
        except Exception as exc:
            raise PluginError(
                f"{self.what} {name!r} cannot be loaded from {entry.value}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.classes:
            if not (isinstance(obj, type) and issubclass(obj, self.kind_type)):
                raise PluginError(
                    f"{self.what} {name!r}: {entry.value} is not a "
                    f"{self.kind_type.__name__} subclass"
                )
        elif not isinstance(obj, self.kind_type):
            raise PluginError(
                f"{self.what} {name!r}: {entry.value} is a {type(obj).__name__}, "
                f"not a {self.kind_type.__name__}"
            )
        kind = cast(T, obj)
        own = name if self.name_of is None else self.name_of(kind)
        if own != name and entry.value not in [e.value for e in self._found().get(own, [])]:
            raise PluginError(f"{self.what} {name!r}: {entry.value} says its name is {own!r}")
        self._loaded[name] = kind
        return kind

    def load_all(self) -> dict[str, T]:
        """Every kind, loaded (for listings and documentation checks, not for running)."""
        return {name: self.get(name) for name in self.names()}


def _dist(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return str(getattr(dist, "name", None) or "longline (built-in)")
