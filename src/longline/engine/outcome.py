"""How a capture run ended: its exit code and, when it went wrong, the last line it logs.

A run that stopped on a signal or at ``--duration`` with every stream running and everything it
received committed exits 0. A stream that ended ``failed`` (refused after its tries, crashed,
or its writer gave up on the store), or items a shutdown could not commit within
``shutdown_timeout``, make it exit 1, even when the other streams ran fine: a script or a
supervisor must be able to tell.
"""

from __future__ import annotations

from collections.abc import Mapping

from longline.engine.stats import StreamStats

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "exit_code", "final_line"]

EXIT_OK = 0
EXIT_FAILED = 1  # a stream failed, data was left uncommitted, or the store could not be opened
EXIT_CONFIG = 2  # the config (or the command line) is invalid


def exit_code(stats: Mapping[str, StreamStats]) -> int:
    """``EXIT_FAILED`` when a stream failed or left items uncommitted, else ``EXIT_OK``."""
    bad = any(s.state == "failed" or s.uncommitted for s in stats.values())
    return EXIT_FAILED if bad else EXIT_OK


def final_line(stats: Mapping[str, StreamStats]) -> str | None:
    """One line naming each failed stream (with its reason) and the uncommitted count of each
    stream that left items uncommitted; None when the run ended well."""
    failed: dict[str, list[str]] = {}  # reason -> streams: a store failure is said once
    for name, s in stats.items():
        if s.state == "failed":
            failed.setdefault(s.reason or "no reason recorded", []).append(name)
    parts = [
        f"stream{'s' if len(names) > 1 else ''} {', '.join(names)} failed: {reason}"
        for reason, names in failed.items()
    ]
    left = {name: s.uncommitted for name, s in stats.items() if s.uncommitted}
    if left:
        counts = ", ".join(f"{name}={n}" for name, n in left.items())
        parts.append(
            "not committed, so not checkpointed (a resumable feed sends them again on the next"
            f" run): {counts} items"
        )
    return "; ".join(parts) if parts else None
