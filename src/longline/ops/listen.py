"""Where the operators' HTTP listener binds, and whether it may bind there without a token.

Kept apart from ``ops/http.py`` (and free of aiohttp) so the CLI checks the address before
anything starts; the address rules themselves are ``core/address.py``, which the config uses too.
"""

from __future__ import annotations

from dataclasses import dataclass

from longline.config import Config
from longline.core.address import is_loopback, parse_listen

__all__ = ["Listen", "ListenError", "listen_settings"]


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
            '(e.g. token: "${LONGLINE_HTTP_TOKEN}") or listen on 127.0.0.1'
        )
    return listen
