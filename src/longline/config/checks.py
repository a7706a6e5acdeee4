"""Field types and validation rules the config models share.

Each rule records its problems in a ``Problems`` under the field's own name, so one model can
report all of them at once. No rule quotes a URL or a header value: either may hold a token.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from longline.config.errors import Problems
from longline.core.fields import Duration, Size
from longline.core.keys import parse_json_path
from longline.plugins import PluginError
from longline.processors.registry import ProcessorSettings
from longline.stores.registry import REGISTRY as STORES
from longline.stores.registry import usage
from longline.stores.sqlite import sqlite_path

__all__ = [
    "HEADER_NAME",
    "Duration",
    "Size",
    "check_headers",
    "check_processors",
    "check_selector",
    "check_store",
    "check_url",
    "none_word",
    "sqlite_path",
]

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name


def none_word(v: object) -> object:
    """YAML ``none`` (the word) means the same as ``null`` for optional settings."""
    return None if isinstance(v, str) and v.strip().lower() == "none" else v


def check_url(url: str, transport: str, allowed: tuple[str, ...], p: Problems) -> None:
    """Scheme by transport; the URL itself is never quoted (it may hold a token)."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in allowed and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        p.add(
            "url", f"must use {' or '.join(s + '://' for s in allowed)} for transport {transport}"
        )


def check_url_credentials(url: str, headers: dict[str, str], p: Problems) -> None:
    """``user:password@`` in the URL becomes an Authorization header: both at once would make
    every connection attempt fail (forever) instead of being refused here."""
    try:
        userinfo = urlsplit(url).username is not None
    except ValueError:
        return
    for name in headers:
        if userinfo and name.lower() == "authorization":
            p.add(f"headers.{name}", "cannot be combined with credentials in the url (user@)")


def check_headers(headers: dict[str, str], p: Problems) -> None:
    seen: set[str] = set()
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            p.add(f"headers.{name}", "not a valid HTTP header name")
        elif name.lower() in seen:
            p.add(f"headers.{name}", "repeated header (names are case-insensitive)")
        if any(c in value for c in "\r\n\0"):
            p.add(f"headers.{name}", "value must not contain CR, LF or NUL")
        seen.add(name.lower())


def check_selector(field: str, value: str, sse: bool, words: tuple[str, str], p: Problems) -> None:
    """``key``/``cursor``: one of ``words``, or a JSON path; ``sse-id`` needs SSE."""
    if value == "sse-id" and not sse:
        p.add(field, "sse-id is only for transport sse")
    elif value.startswith("$"):
        try:
            parse_json_path(value)
        except ValueError as e:
            p.add(field, str(e))
    elif value not in words:
        p.add(field, f"must be {words[0]}, {words[1]} or a JSON path such as $.data.id")


def check_processors(procs: list[ProcessorSettings], streams: list[str], p: Problems) -> None:
    """Processor names are unique and name only streams of this config."""
    first: dict[str, int] = {}
    for i, proc in enumerate(procs):
        if proc.name in first:
            p.add(f"processors[{i}].name", f"duplicate name (also processors[{first[proc.name]}])")
        first.setdefault(proc.name, i)
        for j, name in enumerate(proc.streams or ()):
            if name not in streams:
                p.add(
                    f"processors[{i}].streams[{j}]",
                    f"no stream named {name!r} (streams: {', '.join(streams)})",
                )


def check_store(url: str) -> str:
    """The store URL: a registered scheme, then the backend's own check. Never quoted."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in STORES:
        raise ValueError(f"must be {usage()}")
    try:
        kind = STORES.get(scheme)
    except PluginError as exc:
        raise ValueError(str(exc)) from None
    if kind.check is not None:
        kind.check(url)
    return url
