"""``HOST:PORT`` addresses and whether a host is loopback: pure rules shared by the config
(which validates ``http.listen`` and requires ``http.token`` beyond loopback) and the operators'
listener in ``ops/``, so the config never imports upwards."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "parse_listen"]

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


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
