"""``HOST:PORT`` parsing and the loopback rule that decides whether ``http.token`` is required."""

from __future__ import annotations

import pytest

from longline.core.address import is_loopback, parse_listen


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen("localhost:0") == ("localhost", 0)
    assert parse_listen(" 0.0.0.0:65535 ") == ("0.0.0.0", 65535)
    for bad, why in [
        ("9464", "HOST:PORT"),
        (":9464", "HOST:PORT"),
        ("::1:80", "brackets"),
        ("h:99999", "0 to 65535"),
        ("h:x", "0 to 65535"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_listen(bad)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("ip6-localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
