"""``${VAR:-default}`` in every field that takes ``${VAR}``, and which values become secrets."""

from __future__ import annotations

import pytest

from longline.config import ConfigError, parse_config

SSE = {"name": "s", "transport": "sse"}


def load(env: dict[str, str]) -> object:
    return parse_config(
        {
            "store": "postgresql://u:${DB_PW:-devpw}@127.0.0.1/test",
            "streams": [
                {
                    **SSE,
                    "url": "${FEED:-https://feed.example/sse}",
                    "headers": {"Authorization": "Bearer ${TOKEN:-}", "X-Tenant": "${T:-acme}"},
                },
                {
                    "name": "w",
                    "transport": "ws",
                    "url": "wss://ws.example/x",
                    "subscribe": ['{"key":"${WS_KEY:-k0}"}'],
                },
            ],
            "processors": [
                {"name": "r", "kind": "redis", "url": "${REDIS_URL:-redis://127.0.0.1:6379}"}
            ],
        },
        env=env,
    )


def test_defaults_apply_when_unset_or_empty_in_every_interpolated_field() -> None:
    cfg = load({"TOKEN": "", "T": ""})
    assert cfg.store == "postgresql://u:devpw@127.0.0.1/test"  # type: ignore[attr-defined]
    s, w = cfg.streams  # type: ignore[attr-defined]
    assert s.url == "https://feed.example/sse"
    assert s.headers == {"Authorization": "Bearer ", "X-Tenant": "acme"}
    assert w.subscribe == ['{"key":"k0"}']
    assert cfg.processors[0].url == "redis://127.0.0.1:6379"  # type: ignore[attr-defined]


def test_set_variables_win_and_are_secrets_defaults_are_not() -> None:
    cfg = load({"TOKEN": "tok-9", "WS_KEY": "wk-1", "FEED": "https://other.example/e"})
    s, w = cfg.streams  # type: ignore[attr-defined]
    assert s.url == "https://other.example/e" and w.subscribe == ['{"key":"wk-1"}']
    secrets = cfg.secrets  # type: ignore[attr-defined]
    assert {"tok-9", "wk-1", "https://other.example/e"} <= secrets
    assert "acme" not in secrets and "redis://127.0.0.1:6379" not in secrets
    assert "devpw" in secrets  # still a URL password, found as such


def test_unset_without_default_is_still_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"streams": [{**SSE, "url": "${NOPE}"}]}, env={})
    assert err.value.errors == ["streams[0].url: environment variable NOPE is not set"]
