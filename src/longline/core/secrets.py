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
    "longest_secret",
    "redact",
    "redact_stored",
    "redacted_head",
    "redacted_tail",
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


def longest_secret(secrets: Iterable[str] = ()) -> int:
    """UTF-8 length of the longest of ``secrets`` and the registered ones (0 if none): how far
    past a cut a reader must read so that a secret crossing the cut is whole to redact."""
    return max((len(s.encode()) for s in frozenset(secrets) | _secrets), default=0)


def redacted_head(text: str, limit: int, secrets: Iterable[str] = ()) -> tuple[str, bool]:
    """The first ``limit`` characters of ``text``, redacted as ``redact_stored`` does, and
    whether anything was cut off.

    Redacted before it is cut: a secret that starts before the cut is replaced whole (the cut
    moves past it), where cutting first would leave a piece no redactor recognises. ``text``
    must therefore run ``longest_secret()`` past ``limit`` when more of it exists.
    """
    pattern = _compiled(frozenset(secrets) | _secrets)
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(text) if pattern else ():
        if match.start() >= limit:
            break
        out += (text[pos : match.start()], REDACTED)
        pos = match.end()
    end = max(pos, limit)
    out.append(text[pos:end])
    return "".join(out), end < len(text)


def redacted_tail(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """The last ``limit`` characters of ``text``, redacted before the cut (``redacted_head``:
    a secret that ends after the cut is replaced whole)."""
    pattern = _compiled(frozenset(secrets) | _secrets)
    start = max(0, len(text) - limit)
    out: list[str] = []
    pos = len(text)
    matches = list(pattern.finditer(text)) if pattern else []
    for match in reversed(matches):
        if match.end() <= start:
            break
        out += (text[match.end() : pos], REDACTED)
        pos = match.start()
    out.append(text[min(pos, start) : pos])
    return "".join(reversed(out))


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
