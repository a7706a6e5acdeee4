"""Every example config loads, and resolves to the values its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from longline.config import Config, ConfigError, StreamConfig, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENV = {
    "X_BEARER_TOKEN": "dummy-x-bearer-token",
    "SLACK_APP_TOKEN": "xapp-1-dummy",
    "TWITCH_CLIENT_ID": "dummy-client",
    "TWITCH_TOKEN": "dummy-twitch-token",
    "DISCORD_BOT_TOKEN": "dummy-discord-token",
}
NAMES = [
    "wikimedia.yaml",
    "bluesky-jetstream.yaml",
    "binance-trades.yaml",
    "coinbase.yaml",
    "x-filtered-stream.yaml",
    "slack-socket-mode.yaml",
    "twitch-eventsub.yaml",
    "discord-gateway.yaml",
]


def _only_stream(name: str) -> tuple[Config, StreamConfig]:
    config = load_config(EXAMPLES / name, env=ENV)
    assert len(config.streams) == 1
    return config, config.streams[0]


def test_the_example_set_is_complete() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_has_a_header_quoting_its_provider(name: str) -> None:
    head = (EXAMPLES / name).read_text().splitlines()[:12]
    assert head[0].startswith("# ")
    assert any("Provider rules this config follows" in line for line in head)
    assert any("https://" in line for line in head)


def test_wikimedia() -> None:
    config, s = _only_stream("wikimedia.yaml")
    assert (s.transport, s.url) == ("sse", "https://stream.wikimedia.org/v2/stream/recentchange")
    assert (s.key, s.cursor) == ("$.meta.id", "sse-id")
    assert s.resume is not None and s.resume.header == "Last-Event-ID"
    assert "User-Agent" in s.headers
    assert config.store == "sqlite:///wikimedia.db"
    assert config.secrets == frozenset()


def test_bluesky_jetstream() -> None:
    _, s = _only_stream("bluesky-jetstream.yaml")
    assert s.transport == "ws"
    assert s.url.startswith("wss://jetstream2.us-east.bsky.network/subscribe")
    assert (s.key, s.cursor) == ("hash", "$.time_us")
    assert s.resume is not None and s.resume.query == "cursor"
    assert s.redundancy == 2


def test_binance_trades() -> None:
    _, s = _only_stream("binance-trades.yaml")
    assert s.subscribe == ['{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}']
    assert (s.key, s.cursor, s.resume) == ("$.t", None, None)
    assert s.max_lifetime == 23 * 3600.0
    assert s.max_message_size == 65536
    assert (s.backoff.initial, s.backoff.max) == (1.0, 60.0)


def test_coinbase() -> None:
    _, s = _only_stream("coinbase.yaml")
    assert s.url == "wss://advanced-trade-ws.coinbase.com"
    assert [
        ('"channel":"market_trades"' in m, '"channel":"heartbeats"' in m) for m in s.subscribe
    ] == [
        (True, False),
        (False, True),
    ]
    assert s.key == "$.events[0].trades[0].trade_id"
    assert (s.stall_timeout, s.ping_interval) == (5.0, 4.0)


def test_x_filtered_stream() -> None:
    config, s = _only_stream("x-filtered-stream.yaml")
    assert s.transport == "lines"
    assert s.headers == {"Authorization": "Bearer dummy-x-bearer-token"}
    assert (s.key, s.cursor, s.stall_timeout) == ("$.data.id", None, 30.0)
    assert "dummy-x-bearer-token" in config.secrets
    assert config.redacted()["streams"][0]["headers"] == {"Authorization": "***"}


def test_x_example_without_its_token_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLES / "x-filtered-stream.yaml", env={})
    assert info.value.errors == [
        "streams[0].headers.Authorization: environment variable X_BEARER_TOKEN is not set"
    ]


def test_slack_socket_mode() -> None:
    config, s = _only_stream("slack-socket-mode.yaml")
    assert s.session is not None and s.session.preset == "slack-socket-mode"
    assert (s.transport, s.url, s.redundancy) == ("ws", "", 2)
    assert s.session.options.model_dump() == {
        "app_token": "xapp-1-dummy",
        "api_url": "https://slack.com/api",
        "debug_reconnects": False,
    }
    assert config.secrets == frozenset({"xapp-1-dummy"})


def test_twitch_eventsub() -> None:
    config, s = _only_stream("twitch-eventsub.yaml")
    assert s.session is not None and s.session.preset == "twitch-eventsub"
    opts = s.session.options.model_dump()
    assert opts["keepalive_timeout_seconds"] == 30
    assert opts["url"] == "wss://eventsub.wss.twitch.tv/ws"
    assert [sub["type"] for sub in opts["subscriptions"]] == ["channel.chat.message"]
    assert "dummy-twitch-token" in config.secrets


def test_discord_gateway() -> None:
    config, s = _only_stream("discord-gateway.yaml")
    assert s.session is not None and s.session.preset == "discord-gateway"
    assert s.session.options.model_dump() == {
        "token": "dummy-discord-token",
        "intents": 33281,
        "api_url": "https://discord.com/api/v10",
    }
    assert config.secrets == frozenset({"dummy-discord-token"})
