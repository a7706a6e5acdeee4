"""``${VAR:-default}`` in every field that takes ``${VAR}``, and which values become secrets."""

from __future__ import annotations

import pytest

from longline.config import Config, ConfigError, parse_config

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


def test_defaults_in_a_session_and_the_http_token() -> None:
    """A stream's ``session`` and ``http.token`` take ``${VAR:-default}`` too. A token stays a
    secret even when it is the file's default (it is a token field); another default is not."""

    def load(env: dict[str, str]) -> Config:
        return parse_config(
            {
                "streams": [
                    {
                        "name": "d",
                        "transport": "ws",
                        "session": {
                            "preset": "discord-gateway",
                            "token": "${DISCORD_TOKEN:-dev-bot-token}",
                            "intents": 513,
                            "api_url": "${DISCORD_API:-http://127.0.0.1:9/api}",
                        },
                    }
                ],
                "http": {"listen": "127.0.0.1:9100", "token": "${HTTP_TOKEN:-local-dev}"},
            },
            env=env,
        )

    cfg = load({"DISCORD_API": ""})
    options = cfg.streams[0].session.options  # type: ignore[union-attr]
    assert options.token == "dev-bot-token"  # type: ignore[attr-defined]
    assert options.api_url == "http://127.0.0.1:9/api"  # type: ignore[attr-defined]
    assert cfg.http.token == "local-dev"
    assert {"dev-bot-token", "local-dev"} <= cfg.secrets
    assert "http://127.0.0.1:9/api" not in cfg.secrets
    cfg = load({"DISCORD_TOKEN": "bot-7f3", "HTTP_TOKEN": "ops-9a1"})
    options = cfg.streams[0].session.options  # type: ignore[union-attr]
    assert options.token == "bot-7f3"  # type: ignore[attr-defined]
    assert cfg.http.token == "ops-9a1"
    assert {"bot-7f3", "ops-9a1"} <= cfg.secrets
