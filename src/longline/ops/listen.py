"""Where the operators' HTTP listener binds, and whether it may bind there without a token.

Kept apart from ``ops/http.py`` (and free of aiohttp) because the config validates ``listen``
with it: a config error names the field before anything starts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from longline.config import Config

__all__ = ["Listen", "ListenError", "listen_settings", "parse_listen"]

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class ListenError(Exception):
    """The listener cannot start as asked (one line for the user, no traceback)."""


@dataclass(frozen=True, slots=True)
class Listen:
    """A validated listen address and the token that guards it (None: no authentication)."""

    host: str
    port: int
    token: str | None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:  # never shows the token
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) as ``(host, port)``; ValueError says why not."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT (like 127.0.0.1:9464), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets: [::1]:9464")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, got {port!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses; any other name may reach the network."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_settings(cfg: Config, flag: str | None) -> Listen | None:
    """The listener ``--http`` (which wins) or the config's ``http.listen`` asks for, or None.

    Refuses (``ListenError``) an address beyond loopback without ``http.token``: the status
    and metrics would be readable, and the reload callable, by anyone who can reach the port.
    """
    text = flag if flag is not None else cfg.http.listen
    if text is None:
        return None
    where = "--http" if flag is not None else "http.listen"
    try:
        host, port = parse_listen(text)
    except ValueError as e:
        raise ListenError(f"{where}: {e}") from None
    listen = Listen(host, port, cfg.http.token)
    if not listen.loopback and listen.token is None:
        raise ListenError(
            f"{where}: {listen} is not a loopback address: set http.token "
            "(e.g. token: \"${LONGLINE_HTTP_TOKEN}\") or listen on 127.0.0.1"
        )
    return listen
