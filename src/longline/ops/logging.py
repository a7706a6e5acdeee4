"""Logging setup that never prints a secret.

Tokens reach log lines in surprising ways: an exception that quotes a URL, a ``%r`` of a header
dict, a traceback of a failed handshake. So redaction is not left to each call site: one filter
on the root handler rewrites every record (message, ``%``-args, exception and stack text) before
any formatter sees it, and the plain and JSON formatters redact their final output once more.
"""

from __future__ import annotations

import json as _json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from longline.core.secrets import (
    scrub,
    set_secrets,
)

__all__ = ["CONTEXT_FIELDS", "RedactingFilter", "setup_logging"]

_HANDLER_MARK = "_longline_handler"


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so that no handler or formatter can see a secret.

    The message is formatted here (``msg % args``) and the args dropped, because a secret in an
    arg would otherwise be re-inserted at format time; exception info is rendered to text here
    for the same reason.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: logging would print them raw in its error report
            message = f"{record.msg!s} {record.args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


# Context a call site passes with ``extra={...}``; the JSON lines carry it as fields.
CONTEXT_FIELDS = ("stream", "processor", "cause", "cursor")


def _rfc3339(created: float) -> str:
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: ``ts`` (RFC 3339, UTC), ``level``,
    ``logger``, ``msg``, the ``CONTEXT_FIELDS`` the record carries, ``exc`` and ``stack``.

    Every string is scrubbed before encoding (JSON escapes could split a secret) and the
    encoded line once more."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = scrub(value) if isinstance(value, str) else value
        if record.exc_text:
            entry["exc"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(record.stack_info)
        return scrub(_json.dumps(entry, ensure_ascii=False, default=str))


def _console_handler(stream: TextIO, json: bool) -> logging.Handler:
    if not json and stream.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        # rich_tracebacks would render exc_info itself, bypassing the filter's redacted text.
        return RichHandler(
            console=Console(file=stream), show_path=False, markup=False, rich_tracebacks=False
        )
    handler = logging.StreamHandler(stream)
    if json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def setup_logging(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    json: bool = False,
    *,
    stream: TextIO | None = None,
) -> None:
    """Install one redacting console handler on the root logger (replacing a previous one).

    ``secrets`` replaces the registry of redacted values; ``add_secrets`` extends it later.
    Output goes to ``stream`` (default stderr): rich when it is a terminal, plain lines
    otherwise, JSON lines when ``json`` is set.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(
            f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    set_secrets(secrets)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = _console_handler(stream if stream is not None else sys.stderr, json)
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(numeric)
    # boto3 says "Found credentials in environment variables." at INFO for every client: noise
    # before a command's one line of error (`deadletters` on a DynamoDB store), kept for DEBUG.
    quiet = logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
    logging.getLogger("botocore.credentials").setLevel(quiet)
