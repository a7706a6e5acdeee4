"""Live reload: re-read the config file and apply what changed, leaving the rest alone.

SIGHUP (and ``POST /api/reload``) call ``Reloader.reload``. A config that does not validate is
refused whole: its field-named errors go to the log and the running config stays. Otherwise
streams and processors are compared by name: added ones start, removed ones stop cleanly
(flush, checkpoint, connections closed), changed ones restart with their new settings, and
unchanged ones are not touched at all (same connections, no gap). Top-level settings other than
``streams``, ``processors`` and ``shutdown_timeout`` (the store, the writer, ...) are fixed for
the life of the process: a change is logged as needing a restart and the old value is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from longline.config import Config, ConfigError, load_config
from longline.core.extras import MissingExtra
from longline.core.secrets import add_secrets

__all__ = ["Diff", "ReloadResult", "Reloadable", "Reloader", "diff", "fixed_settings"]

log = logging.getLogger("longline.reload")

# Applied on reload; every other top-level key needs a restart.
LIVE_KEYS = frozenset({"streams", "processors", "shutdown_timeout"})


@dataclass(frozen=True, slots=True)
class Diff:
    """Names of one kind of item (streams or processors), by what a reload does to them."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def words(self, kind: str) -> list[str]:
        parts = [
            f"{len(names)} {kind}(s) {verb} ({', '.join(names)})"
            for verb, names in (
                ("started", self.added),
                ("stopped", self.removed),
                ("restarted", self.changed),
            )
            if names
        ]
        return parts


def diff(old: Mapping[str, object], new: Mapping[str, object]) -> Diff:
    """Compare two name -> settings maps (settings compare by value)."""
    return Diff(
        added=tuple(n for n in new if n not in old),
        removed=tuple(n for n in old if n not in new),
        changed=tuple(n for n in new if n in old and old[n] != new[n]),
        unchanged=tuple(n for n in new if n in old and old[n] == new[n]),
    )


@dataclass(slots=True)
class ReloadResult:
    """What a reload did; ``ok`` False when the new config was refused (``errors``)."""

    ok: bool
    streams: Diff = field(default_factory=Diff)
    processors: Diff = field(default_factory=Diff)
    errors: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)  # top-level keys kept as they were

    def line(self) -> str:
        """One line for the log and for ``POST /api/reload``."""
        if not self.ok:
            return f"reload refused ({len(self.errors)} error(s)); the running config stays"
        parts = self.streams.words("stream") + self.processors.words("processor")
        text = "reloaded: " + ("; ".join(parts) if parts else "no stream or processor changed")
        if self.needs_restart:
            text += f"; {', '.join(self.needs_restart)} changed: needs a restart (kept)"
        return text

    def __str__(self) -> str:
        return self.line()


def fixed_settings(old: Config, new: Config) -> tuple[Config, list[str]]:
    """``new`` with every changed top-level key outside ``LIVE_KEYS`` set back to ``old``'s
    value, and the names of those keys."""
    fields = [k for k in type(new).model_fields if k not in LIVE_KEYS]
    kept = [k for k in fields if getattr(old, k) != getattr(new, k)]
    if not kept:
        return new, []
    return new.model_copy(update={k: getattr(old, k) for k in kept}), kept


class Reloadable(Protocol):
    """What can take a new config: ``longline.App`` (``run``, ``dispatch``), a ``Dispatcher``."""

    @property
    def config(self) -> Config: ...

    async def reload(self, new: Config) -> ReloadResult: ...


class Reloader:
    """Re-reads ``path`` and applies it to ``target``; one reload at a time."""

    def __init__(self, path: str | Path, target: Reloadable) -> None:
        self.path = Path(path)
        self.target = target
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[ReloadResult]] = set()

    async def reload(self) -> ReloadResult:
        """Load the file and apply it; the outcome is logged and returned (never raised)."""
        async with self._lock:
            try:
                new = load_config(self.path)
            except ConfigError as e:
                for error in e.errors:
                    log.error("reload refused: %s", error)
                result = ReloadResult(ok=False, errors=list(e.errors))
                log.error("%s: %s", self.path, result.line())
                return result
            add_secrets(new.secrets)
            new, kept = fixed_settings(self.target.config, new)
            for key in kept:
                log.warning(
                    "reload: %s changed in %s: it needs a restart; keeping the running one",
                    key, self.path,
                )  # fmt: skip
            try:
                result = await self.target.reload(new)
            except Exception as e:  # a processor kind whose library is missing, ...
                line = str(e) if isinstance(e, MissingExtra) else f"{type(e).__name__}: {e}"
                log.error("reload refused: %s", line)
                result = ReloadResult(ok=False, errors=[line])
            if not result.ok:
                log.error("%s: %s", self.path, result.line())
                return result
            result.needs_restart = kept
            log.info("%s: %s", self.path, result.line())
            return result

    async def reload_line(self) -> str:
        """``reload`` as one line (what ``POST /api/reload`` answers); a refused config raises
        ``ConfigError`` with its field-named errors (also logged)."""
        result = await self.reload()
        if not result.ok:
            raise ConfigError(result.errors)
        return result.line()

    def on_signal(self) -> None:
        """For ``loop.add_signal_handler(SIGHUP, ...)``: start a reload in the background."""
        task = asyncio.ensure_future(self.reload())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
