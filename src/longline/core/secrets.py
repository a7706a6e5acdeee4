"""The secrets a process knows, and their redaction from anything printed or stored.

``${VAR}`` values from the config, sensitive header values and URL passwords are registered
here while the config is read (and tokens obtained later, by ``add_secrets``); the log filter
(``ops.logging``) and everything that stores text (dead letters, quarantine and status reasons)
replace them with ``***``. Pure code, shared by every layer, so it lives in ``core``.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable

__all__ = [
    "REDACTED",
    "add_secrets",
    "redact",
    "redact_stored",
    "registered_secrets",
    "scrub",
    "set_secrets",
]

REDACTED = "***"

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    """One alternation, longest first, so a secret containing another is replaced whole."""
    unique = sorted({v for v in values if v}, key=lambda v: (-len(v), v))
    return re.compile("|".join(re.escape(v) for v in unique)) if unique else None


@functools.lru_cache(maxsize=64)
def _compiled(values: frozenset[str]) -> re.Pattern[str] | None:
    return _compile(values)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every non-empty secret replaced by ``***``."""
    pattern = _compiled(frozenset(secrets))
    return pattern.sub(REDACTED, text) if pattern else text


def redact_stored(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` as it may be stored (dead letter errors, quarantine and status reasons):
    ``secrets`` (a config's) and every secret registered for the logs replaced by ``***``.

    Stored text is printed later by other commands (``deadletters``, ``status``, ``events``),
    beyond the reach of the log filter, so it is redacted before it is written.
    """
    return redact(text, frozenset(secrets) | _secrets)


def registered_secrets() -> frozenset[str]:
    """The secrets currently redacted from log output."""
    return _secrets


def add_secrets(values: Iterable[str], *, retire: Iterable[str] = ()) -> None:
    """Register more secrets at runtime (for example a token obtained after startup), and
    forget ``retire``: a token refreshed every hour for months must not grow the list (and the
    pattern every log line is matched against) by one each time."""
    global _secrets, _pattern
    with _lock:
        _secrets = (_secrets - set(retire)) | {v for v in values if v}
        _pattern = _compile(_secrets)


def set_secrets(values: Iterable[str]) -> None:
    """Replace the registered secrets (the log setup does, with a config's)."""
    global _secrets, _pattern
    with _lock:
        _secrets = frozenset(v for v in values if v)
        _pattern = _compile(_secrets)


def scrub(text: str) -> str:
    """``text`` without any registered secret."""
    pattern = _pattern  # one read: add_secrets may swap it from another thread
    return pattern.sub(REDACTED, text) if pattern else text
