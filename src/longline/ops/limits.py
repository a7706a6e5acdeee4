"""The open-file limit: raised to the hard limit at start, and checked against the config.

Every connection is a socket, so one process holds at most about ``RLIMIT_NOFILE`` streams;
the soft limit is often 1,024 while the hard limit allows far more. ``longline run`` raises
the soft limit to the hard one (a process may always do that) and refuses, in one line, a
config that needs more files than even that allows, instead of failing connection after
connection with ``EMFILE``. A worker without ``--max-streams`` caps itself at what fits.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence

from longline.config import StreamConfig

__all__ = [
    "RESERVED_FILES",
    "FileLimit",
    "check_file_limit",
    "files_needed",
    "raise_file_limit",
    "streams_that_fit",
]

# Files that are not connections: the store (a pool of PostgreSQL connections, SQLite's
# files), the event loop, logging, DNS, the Python runtime.
RESERVED_FILES = 64


class FileLimit(Exception):
    """The config needs more open files than the hard limit allows."""


def raise_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard limit; return ``(soft, hard)`` in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # e.g. an "infinite" hard limit that the kernel caps lower
        return soft, hard
    return hard, hard


def _connections(stream: StreamConfig) -> int:
    """Sockets one stream may hold at once: its redundant connections, plus the successor
    opened before a rotation closes its predecessor."""
    return stream.redundancy + (1 if stream.max_lifetime is not None else 0)


def files_needed(streams: Sequence[StreamConfig]) -> int:
    """Open files a process capturing ``streams`` may need at once."""
    return RESERVED_FILES + sum(_connections(s) for s in streams)


def streams_that_fit(streams: Sequence[StreamConfig], limit: int) -> int:
    """How many of ``streams`` (the most demanding first) fit under ``limit`` open files."""
    room = limit - RESERVED_FILES
    fit = 0
    for need in sorted((_connections(s) for s in streams), reverse=True):
        if need > room:
            break
        room -= need
        fit += 1
    return fit


def check_file_limit(streams: Sequence[StreamConfig], soft: int, hard: int) -> None:
    """Raise :class:`FileLimit` with the one line to print when ``streams`` cannot fit."""
    needed = files_needed(streams)
    if needed <= soft:
        return
    raise FileLimit(
        f"{len(streams)} streams need up to {needed} open files (connections plus"
        f" {RESERVED_FILES} for the store and runtime), but the open-file limit is {soft}"
        f" (hard limit {hard}): raise it (ulimit -n, systemd LimitNOFILE=, docker --ulimit"
        " nofile=) or share the streams among several `longline run --worker` processes"
    )
