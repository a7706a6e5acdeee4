"""Field types and secret rules shared by every config model, built-in or plugin.

The stream config, the processor kinds and third-party kinds all validate names, durations and
sizes the same way and find secrets (credential headers, URL passwords) the same way, so these
pieces live here once and the config, the registries and plugins import them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator

from longline.core.units import parse_duration, parse_size

__all__ = [
    "NAME",
    "SENSITIVE_HEADERS",
    "Duration",
    "Size",
    "check_name",
    "header_secrets",
    "url_secrets",
]

SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"})
"""Header names (lower case) whose values are credentials: never shown, never stored."""

NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_name(v: str) -> str:
    """A stream or processor name: it ends up in file names, keys and metric labels."""
    if not NAME.fullmatch(v):
        raise ValueError("must be letters, digits, _ or - only ([A-Za-z0-9_-]+)")
    return v


def _duration(v: object) -> object:
    return v if v is None else parse_duration(v)  # type: ignore[arg-type]


def _size(v: object) -> int:
    return parse_size(v)  # type: ignore[arg-type]


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written as a number or as ``500ms``, ``30s``, ``5m`` (see ``core.units``)."""

Size = Annotated[int, BeforeValidator(_size)]
"""Bytes, written as a number or as ``64KiB``, ``1MB`` (see ``core.units``)."""


def header_secrets(headers: Mapping[str, object]) -> set[str]:
    """Values of credential headers, and their token part (``Bearer <token>``)."""
    out: set[str] = set()
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str) and name.lower() in SENSITIVE_HEADERS:
            out.add(value)
            scheme_token = value.strip().split(None, 1)
            if len(scheme_token) == 2:
                out.add(scheme_token[1])
    return out


def url_secrets(url: object) -> set[str]:
    """The password of a ``scheme://user:password@host`` URL, if it has one."""
    if not url or not isinstance(url, str):
        return set()
    try:
        password = urlsplit(url).password
    except ValueError:
        return set()
    return {password} if password else set()
