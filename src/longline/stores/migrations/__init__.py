"""Versioned schema migrations shipped as SQL files (``<backend>/NNNN_name.sql``).

Kept as plain SQL so an operator can read exactly what ``longline init`` will run, and apply it
by hand when the service account may not change the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Migration", "load"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(slots=True, frozen=True)
class Migration:
    """One schema step: applied once, in version order, inside one transaction."""

    version: int
    name: str
    sql: str


def load(backend: str) -> list[Migration]:
    """Every migration of ``backend`` in version order; versions must be 1, 2, 3, ..."""
    folder = resources.files(__package__).joinpath(backend)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {found}")
    return found
