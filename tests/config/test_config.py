"""Config loading: defaults per transport, exact error lists, interpolation, and secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from longline.config import (
    BackoffConfig,
    Config,
    ConfigError,
    HttpConfig,
    ResumeConfig,
    StreamConfig,
    TlsConfig,
    WriterConfig,
    load_config,
    loads_config,
    parse_config,
    sqlite_path,
)
from longline.plugins import spell_list
from longline.stores.registry import REGISTRY as STORES
from longline.transports.registry import REGISTRY as TRANSPORTS

SSE = {"name": "wiki", "transport": "sse", "url": "https://stream.example.org/v2/recentchange"}
WS = {"name": "trades", "transport": "ws", "url": "wss://ws.example.org/feed"}
LINES = {"name": "posts", "transport": "lines", "url": "https://api.example.org/stream"}


def cfg(*streams: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"streams": list(streams), **top}


def errors(data: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env or {})
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


# --- defaults ---------------------------------------------------------------------------------

COMMON_DEFAULTS = {
    "options": {},
    "headers": {},
    "subscribe": [],
    "stall_timeout": 30.0,
    "max_lifetime": None,
    "redundancy": 1,
    "max_message_size": 1_000_000,
    "backoff": {"initial": 0.5, "max": 30.0},
    "ping_interval": 10.0,
    "session": None,
    "tls": None,
}


def test_defaults_for_sse() -> None:
    c = parse_config(cfg(SSE), env={})
    assert c.store == "sqlite:///longline.db"
    assert c.writer == WriterConfig(batch_max=1000, batch_window=0.02)
    # docs/configuration.md: an INFO summary a minute, ten seconds to commit on a stop.
    assert (c.log_summary_interval, c.shutdown_timeout) == (60.0, 10.0)
    assert (c.store_patience, c.connect_rate) == (300.0, 500.0)
    assert c.streams[0].model_dump() == {
        **SSE,
        **COMMON_DEFAULTS,
        "key": "sse-id",
        "cursor": "sse-id",
        "resume": {"header": "Last-Event-ID", "query": None, "subscribe": False},
    }


@pytest.mark.parametrize("stream", [WS, LINES])
def test_defaults_for_ws_and_lines(stream: dict[str, Any]) -> None:
    c = parse_config(cfg(stream), env={})
    assert c.streams[0].model_dump() == {
        **stream,
        **COMMON_DEFAULTS,
        "key": "hash",
        "cursor": None,
        "resume": None,
    }


def test_sse_without_cursor_gets_no_default_resume() -> None:
    for none in (None, "none", "None"):
        s = parse_config(cfg({**SSE, "cursor": none}), env={}).streams[0]
        assert (s.key, s.cursor, s.resume) == ("sse-id", None, None)


def test_full_stream_resolves_units() -> None:
    stream = {
        **WS,
        "headers": {"User-Agent": "longline-test"},
        "subscribe": ['{"op":"subscribe","since":"{cursor}"}'],
        "key": "$.data.id",
        "cursor": "$['meta']['ts']",
        "resume": {"subscribe": True},
        "stall_timeout": "1m",
        "max_lifetime": "23h",
        "redundancy": 2,
        "max_message_size": "64KiB",
        "backoff": {"initial": "250ms", "max": "1h30m"},
        "ping_interval": 15,
    }
    c = parse_config(cfg(stream, writer={"batch_max": 50, "batch_window": "5ms"}), env={})
    s = c.streams[0]
    assert (s.stall_timeout, s.max_lifetime, s.ping_interval) == (60.0, 82800.0, 15.0)
    assert s.max_message_size == 65536
    assert s.backoff == BackoffConfig(initial=0.25, max=5400.0)
    assert s.resume == ResumeConfig(subscribe=True)
    assert c.writer == WriterConfig(batch_max=50, batch_window=0.005)


def test_ping_interval_defaults_to_a_third_of_stall_timeout() -> None:
    assert parse_config(cfg({**WS, "stall_timeout": "6s"}), env={}).streams[0].ping_interval == 2.0


def test_ping_interval_is_accepted_and_ignored_outside_ws() -> None:
    # One set of stream settings can serve every transport; sse and lines have no pings.
    s = parse_config(cfg({**LINES, "stall_timeout": "500ms", "ping_interval": "100ms"}), env={})
    assert s.streams[0].ping_interval == 0.1
    assert errors(cfg({**SSE, "stall_timeout": "1s", "ping_interval": "2s"})) == [
        "streams[0].ping_interval: must be shorter than stall_timeout (pongs keep the stream live)"
    ]


def test_stream_config_built_directly_resolves_defaults() -> None:
    s = StreamConfig(name="a", transport="sse", url="http://127.0.0.1:8080/events")
    assert (s.key, s.cursor, s.resume, s.ping_interval) == (
        "sse-id",
        "sse-id",
        ResumeConfig(header="Last-Event-ID"),
        10.0,
    )
    with pytest.raises(ValidationError, match="subscribe: transport sse does not send messages"):
        StreamConfig(name="a", transport="sse", url="http://127.0.0.1/", subscribe=["x"])


@pytest.mark.parametrize("stream", [SSE, WS, LINES, {**SSE, "cursor": None}])
def test_dump_validates_back_to_the_same_config(stream: dict[str, Any]) -> None:
    c = parse_config(cfg(stream, store="postgresql://db.example.org/longline"), env={})
    again = parse_config(c.model_dump(), env={})
    assert again == c
    assert Config.model_validate_json(c.model_dump_json()) == c


# --- exact error lists ------------------------------------------------------------------------


def test_unknown_keys_name_the_path_and_suggest() -> None:
    data = cfg(
        {**SSE, "stall_timout": "5s"},
        {**WS, "backoff": {"initial": "1s", "maximum": "2s"}},
        stores="x",
    )
    assert errors(data) == [
        "streams[0].stall_timout: unknown key (did you mean stall_timeout?)",
        "streams[1].backoff.maximum: unknown key (did you mean max?)",
        "stores: unknown key (did you mean store?)",
    ]
    assert errors(cfg({**WS, "reconnect": True})) == [
        "streams[0].reconnect: unknown key; allowed: backoff, cursor, headers, key, max_lifetime, "
        "max_message_size, name, options, ping_interval, redundancy, resume, session, "
        "stall_timeout, subscribe, tls, transport, url"
    ]


def test_bad_transport_at_streams_2() -> None:
    data = cfg(SSE, WS, {"name": "x", "transport": "http", "url": "https://a.example"})
    # Installed plugins (tests/plugins) come after the built-ins.
    assert errors(data) == [f"streams[2].transport: must be {spell_list(TRANSPORTS.names())}"]
    assert spell_list(TRANSPORTS.builtin_names()) == "'sse', 'ws' or 'lines'"
    assert TRANSPORTS.names()[:3] == ["sse", "ws", "lines"]


def test_transport_options_are_validated_by_the_kind() -> None:
    assert errors(cfg({**SSE, "options": {"x": 1}})) == [
        "streams[0].options: transport sse takes no options"
    ]


def test_duplicate_names() -> None:
    data = cfg(SSE, WS, {**LINES, "name": "wiki"}, {**WS, "url": "ws://b.example"})
    assert errors(data) == [
        "streams[2].name: duplicate name (also streams[0])",
        "streams[3].name: duplicate name (also streams[1])",
    ]


def test_bad_durations_and_sizes() -> None:
    help_d = "a number of seconds or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"
    help_s = "a number of bytes or a size such as 200B, 64KB, 1MB, 1GB, 64KiB, 1MiB"
    data = cfg(
        {**SSE, "stall_timeout": "5x", "max_message_size": "1 megabyte"},
        {**WS, "backoff": {"initial": "-1s"}, "max_lifetime": True},
        writer={"batch_window": "soon"},
    )
    assert errors(data) == [
        f"writer.batch_window: invalid duration 'soon'; expected {help_d}",
        f"streams[0].stall_timeout: invalid duration '5x'; expected {help_d}",
        f"streams[0].max_message_size: invalid size '1 megabyte'; expected {help_s}",
        f"streams[1].max_lifetime: expected {help_d}, got bool",
        f"streams[1].backoff.initial: negative duration '-1s'; expected {help_d}",
    ]


def test_missing_environment_variables() -> None:
    data = cfg(
        {**SSE, "headers": {"Authorization": "Bearer ${WIKI_TOKEN}"}},
        {**WS, "url": "wss://${WS_HOST}/feed", "subscribe": ['{"k":"${WS_KEY}"}', "${}"]},
        store="postgresql://u:${DB_PASSWORD}@db/longline",
    )
    assert errors(data, env={"WS_HOST": "ws.example.org"}) == [
        "store: environment variable DB_PASSWORD is not set",
        "streams[0].headers.Authorization: environment variable WIKI_TOKEN is not set",
        "streams[1].subscribe[0]: environment variable WS_KEY is not set",
        "streams[1].subscribe[1]: malformed ${...}: write ${NAME} or ${NAME:-default} "
        "(NAME: letters, digits, _) or $${ for a literal ${",
    ]


def test_missing_variable_in_url_hides_the_resulting_url_error_but_keeps_others() -> None:
    data = cfg({**WS, "url": "${FEED_URL}", "redundancy": 0})
    assert errors(data) == [
        "streams[0].url: environment variable FEED_URL is not set",
        "streams[0].redundancy: must be >= 1",
    ]


def test_transport_specific_fields() -> None:
    data = cfg(
        {**SSE, "subscribe": ["hello"]},
        {**WS, "key": "sse-id", "cursor": "sse-id"},
        {**LINES, "resume": {"subscribe": True}, "cursor": "$.id"},
        {**WS, "name": "w2", "resume": {"query": "since"}},
        {**WS, "name": "w3", "subscribe": ['{"since":"{cursor}"}'], "cursor": "$.ts"},
        {**WS, "name": "w4", "subscribe": ["{}"], "cursor": "$.ts", "resume": {"subscribe": True}},
    )
    assert errors(data) == [
        "streams[0].subscribe: transport sse does not send messages (ws does)",
        "streams[1].key: sse-id is only for transport sse",
        "streams[1].cursor: sse-id is only for transport sse",
        "streams[2].resume.subscribe: transport lines does not send messages (ws does)",
        "streams[2].resume.subscribe: no subscribe message contains {cursor}",
        "streams[3].resume: needs a cursor: set cursor, or resume: none",
        "streams[4].subscribe: a message contains {cursor}; set resume: {subscribe: true}",
        "streams[5].resume.subscribe: no subscribe message contains {cursor}",
    ]


def test_urls_names_selectors_and_bounds() -> None:
    data = cfg(
        {**SSE, "url": "wss://a.example/x", "name": "has space"},
        {**WS, "url": "https://a.example/x", "key": "$.a[", "cursor": "hash"},
        {**LINES, "url": "not a url", "key": "id", "redundancy": 17, "stall_timeout": 0},
        {**WS, "name": "w2", "backoff": {"initial": "10s", "max": "1s"}},
        {**WS, "name": "w3", "ping_interval": "30s", "max_message_size": 0, "max_lifetime": "0s"},
    )
    assert errors(data) == [
        "streams[0].name: must be letters, digits, _ or - only ([A-Za-z0-9_-]+)",
        "streams[1].url: must use ws:// or wss:// for transport ws",
        "streams[1].key: invalid JSON path '$.a[': expected ['name'], [\"name\"] or a "
        "non-negative [index] at position 3",
        "streams[1].cursor: must be sse-id, none or a JSON path such as $.data.id",
        "streams[2].stall_timeout: must be > 0",
        "streams[2].redundancy: must be <= 16",
        "streams[3].backoff.initial: must be <= backoff.max",
        "streams[4].max_lifetime: must be > 0",
        "streams[4].max_message_size: must be > 0",
    ]
    # Once the field errors are fixed, the cross-field ones of the same stream show up.
    fixed = cfg(
        {**SSE, "url": "wss://a.example/x"},
        {**LINES, "url": "not a url", "key": "id"},
        {**WS, "name": "w3", "ping_interval": "30s"},
    )
    assert errors(fixed) == [
        "streams[0].url: must use http:// or https:// for transport sse",
        "streams[1].url: must use http:// or https:// for transport lines",
        "streams[1].key: must be sse-id, hash or a JSON path such as $.data.id",
        "streams[2].ping_interval: must be shorter than stall_timeout (pongs keep the stream live)",
    ]


def test_resume_forms() -> None:
    data = cfg(
        {**SSE, "resume": {"header": "Last-Event-ID", "query": "since"}},
        {**WS, "resume": {"subscribe": False}},
        {**LINES, "resume": {"header": "Bad Header"}, "cursor": "$.id"},
        {**WS, "name": "w2", "resume": {"subscribe": "yes"}},
    )
    one = "set exactly one of header, query or subscribe: true (or resume: none)"
    assert errors(data) == [
        f"streams[0].resume: {one}",
        f"streams[1].resume: {one}",
        "streams[2].resume: header must be an HTTP header name",
        "streams[3].resume.subscribe: expected true or false",
    ]
    ok = parse_config(cfg({**LINES, "cursor": "$.id", "resume": {"query": "since"}}), env={})
    assert ok.streams[0].resume == ResumeConfig(query="since")


def test_headers_are_checked() -> None:
    data = cfg({**SSE, "headers": {"Bad Name": "x", "X-A": "1", "x-a": "2", "X-B": "a\r\nb"}})
    assert errors(data) == [
        "streams[0].headers.Bad Name: not a valid HTTP header name",
        "streams[0].headers.x-a: repeated header (names are case-insensitive)",
        "streams[0].headers.X-B: value must not contain CR, LF or NUL",
    ]


def test_url_credentials_and_an_authorization_header_are_refused_together() -> None:
    """Found by the reliability campaign: aiohttp refuses every connect of such a stream, which
    longline then retried forever as if the network had failed."""
    url = "https://u:${PW}@stream.example.org/x"
    data = cfg({**SSE, "url": url, "headers": {"authorization": "Bearer ${T}"}})
    assert errors(data, env={"PW": "pw1", "T": "t1"}) == [
        "streams[0].headers.authorization: cannot be combined with credentials in the url (user@)"
    ]
    parse_config(cfg({**SSE, "url": url, "headers": {"X-Api-Key": "k"}}), env={"PW": "pw1"})


def test_types_and_required_fields() -> None:
    data = cfg(
        {"name": "a", "transport": "ws"},
        {**SSE, "headers": {"X-N": 5}, "subscribe": "one", "redundancy": "2"},
        writer={"batch_max": 0},
    )
    assert errors(data) == [
        "writer.batch_max: must be >= 1",
        "streams[0].url: required",
        "streams[1].headers.X-N: expected a string",
        "streams[1].subscribe: expected a list",
        "streams[1].redundancy: expected an integer",
    ]


def test_top_level_shape() -> None:
    assert errors(None) == ["(root): the config is empty; it needs at least a `streams` list"]
    assert errors([SSE]) == ["(root): expected a mapping, got list"]
    assert errors({}) == ["streams: required"]
    assert errors({"streams": []}) == ["streams: at least one stream is required"]
    assert errors({"streams": [SSE], "writer": 3}) == ["writer: expected a mapping"]


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            "mysql://db/x",
            "must be sqlite:///PATH, postgresql://..., postgres://..., dynamodb://TABLE or memory://NAME",
        ),
        (
            "longline.db",
            "must be sqlite:///PATH, postgresql://..., postgres://..., dynamodb://TABLE or memory://NAME",
        ),
        (
            "sqlite:///:memory:",
            "sqlite:///:memory: keeps nothing after the process exits; use a file",
        ),
        (
            "sqlite://host/x.db",
            "expected sqlite:///relative/path.db or sqlite:////absolute/path.db",
        ),
        ("sqlite:///", "expected sqlite:///relative/path.db or sqlite:////absolute/path.db"),
        (
            "dynamodb://?region=eu-west-1",
            "dynamodb:// needs a table name: dynamodb://TABLE?region=...",
        ),
    ],
)
def test_bad_store_urls(store: str, message: str) -> None:
    builtin = (
        "must be sqlite:///PATH, postgresql://..., postgres://..., dynamodb://TABLE or memory://NAME"
    )
    plugins = [STORES.get(name).usage for name in STORES.names()[5:]]
    if message == builtin and plugins:  # installed plugin stores (tests/plugins) come last
        listed = "sqlite:///PATH, postgresql://..., postgres://..., dynamodb://TABLE, memory://NAME"
        message = f"must be {', '.join([listed, *plugins[:-1]])} or {plugins[-1]}"
    assert errors(cfg(SSE, store=store)) == [f"store: {message}"]


@pytest.mark.parametrize(
    "store",
    [
        "sqlite:///longline.db",
        "sqlite:////var/lib/longline/events.db",
        "postgresql://user:pw@db.example.org:5432/longline",
        "postgres:///longline",
        "dynamodb://events?region=eu-west-1&endpoint_url=http://127.0.0.1:8000",
    ],
)
def test_good_store_urls(store: str) -> None:
    assert parse_config(cfg(SSE, store=store), env={}).store == store


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///longline.db") == Path("longline.db")
    assert sqlite_path("sqlite:///data/x.db") == Path("data/x.db")
    assert sqlite_path("sqlite:////abs/path.db") == Path("/abs/path.db")
    assert sqlite_path("sqlite:///:memory:") == Path(":memory:")
    for bad in ("postgresql://h/db", "sqlite://", "sqlite:///", "sqlite:x.db"):
        with pytest.raises(ValueError) as info:
            sqlite_path(bad)
        assert str(info.value) == (
            "expected sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )


# --- interpolation and secrets ------------------------------------------------------------------


def test_interpolation_everywhere_it_is_allowed_and_secrets_collected() -> None:
    env = {"TOKEN": "t0k3n-abc", "HOST": "ws.example.org", "KEY": "k-123", "PW": "pw-xyz"}
    data = cfg(
        {
            **WS,
            "url": "wss://${HOST}/feed?x=$${HOST}",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Trace": "${KEY}-${KEY}"},
            "subscribe": ['{"key":"${KEY}","literal":"$${KEY}","cost":"$5"}'],
        },
        store="postgresql://app:${PW}@db/longline",
    )
    c = parse_config(data, env=env)
    s = c.streams[0]
    assert s.url == "wss://ws.example.org/feed?x=${HOST}"
    assert s.headers == {"Authorization": "Bearer t0k3n-abc", "X-Trace": "k-123-k-123"}
    assert s.subscribe == ['{"key":"k-123","literal":"${KEY}","cost":"$5"}']
    assert c.store == "postgresql://app:pw-xyz@db/longline"
    assert c.secrets == frozenset(
        {"t0k3n-abc", "ws.example.org", "k-123", "pw-xyz", "Bearer t0k3n-abc"}
    )


def test_literal_credential_headers_and_url_passwords_are_secrets() -> None:
    data = cfg(
        {**SSE, "url": "https://user:url-pass@h.example/s"},
        {
            **LINES,
            "headers": {
                "authorization": "Basic dXNlcjpwYXNz",
                "Cookie": "session=abc",
                "X-API-Key": "key-1",
                "Proxy-Authorization": "Bearer proxy-tok",
                "User-Agent": "not-a-secret",
            },
        },
        store="postgresql://app:store-pass@db/longline",
    )
    c = parse_config(data, env={})
    assert c.secrets == frozenset(
        {
            "url-pass",
            "store-pass",
            "Basic dXNlcjpwYXNz",
            "dXNlcjpwYXNz",
            "session=abc",
            "key-1",
            "Bearer proxy-tok",
            "proxy-tok",
        }
    )
    shown = c.redacted()
    assert shown["store"] == "postgresql://app:***@db/longline"
    assert shown["streams"][0]["url"] == "https://user:***@h.example/s"
    assert shown["streams"][1]["headers"] == {
        "authorization": "***",
        "Cookie": "***",
        "X-API-Key": "***",
        "Proxy-Authorization": "***",
        "User-Agent": "not-a-secret",
    }
    assert "secrets" not in c.model_dump()
    assert "store-pass" not in str(shown)


def test_redacted_hides_interpolated_values_wherever_they_appear() -> None:
    env = {"T": "s3cr3t-value"}
    data = cfg({**WS, "url": "wss://h.example/?token=${T}", "subscribe": ['{"auth":"${T}"}']})
    shown = parse_config(data, env=env).redacted()
    assert shown["streams"][0]["url"] == "wss://h.example/?token=***"
    assert shown["streams"][0]["subscribe"] == ['{"auth":"***"}']
    assert shown["streams"][0]["key"] == "hash"


SECRET = "sk-live-4242-very-secret"


@pytest.mark.parametrize(
    "stream",
    [
        {**SSE, "url": "${SECRET_URL}"},  # interpolated to an invalid URL
        {**SSE, "url": "ftp://user:${SECRET}@h.example/"},  # bad scheme around a secret
        {**SSE, "headers": {"Authorization": "Bearer ${SECRET}\nX: y"}},  # invalid header value
        {**SSE, "headers": {"Authorization": f"Bearer {SECRET}\n"}},  # literal, invalid
        {**SSE, "headers": {"X-Api-Key": f"{SECRET}", "Bad Name": "${SECRET}"}},
        {**SSE, "headers": {"Cookie": f"{SECRET}"}, "transport": "nope"},
        {**SSE, "subscribe": ["${SECRET}"]},  # subscribe on sse, value secret
    ],
)
def test_secrets_never_appear_in_errors(stream: dict[str, Any]) -> None:
    env = {"SECRET": SECRET, "SECRET_URL": f"gopher://{SECRET}"}
    for data in (
        cfg(stream),
        cfg(SSE, store=f"mysql://u:{SECRET}@h/db"),
        cfg(stream, store="${SECRET}"),
    ):
        found = errors(data, env=env)
        assert found
        assert SECRET not in "\n".join(found)
        assert "sk-live" not in "\n".join(found)


def test_missing_variable_error_names_the_variable_not_other_values() -> None:
    data = cfg({**SSE, "headers": {"Authorization": "Bearer ${A} ${B}"}})
    assert errors(data, env={"A": "present-secret"}) == [
        "streams[0].headers.Authorization: environment variable B is not set"
    ]


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGLINE_TEST_TOKEN", "env-token-1")
    c = parse_config(cfg({**SSE, "headers": {"X-Token": "${LONGLINE_TEST_TOKEN}"}}))
    assert c.streams[0].headers == {"X-Token": "env-token-1"}
    assert c.secrets == frozenset({"env-token-1"})


# --- files ------------------------------------------------------------------------------------


def test_load_config_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "writer: {batch_max: 10, batch_window: 20ms}\n"
        "streams:\n"
        "  - name: wiki\n"
        "    transport: sse\n"
        "    url: https://stream.example.org/v2/stream/recentchange\n"
        '    headers: {Authorization: "Bearer ${WIKI_TOKEN}"}\n'
        "    key: $.meta.id\n"
        "    cursor: none\n"
        "    max_lifetime: none\n"
    )
    c = load_config(path, env={"WIKI_TOKEN": "wt-1"})
    s = c.streams[0]
    assert (s.key, s.cursor, s.resume, s.max_lifetime) == ("$.meta.id", None, None, None)
    assert c.writer == WriterConfig(batch_max=10, batch_window=0.02)
    assert c.secrets == frozenset({"wt-1", "Bearer wt-1"})
    assert load_config(str(path), env={"WIKI_TOKEN": "x"}).streams[0].name == "wiki"


def test_yaml_syntax_error_gives_position_and_never_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"streams:\n  - name: a\n    headers: {{Authorization: Bearer {SECRET}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert len(info.value.errors) == 1
    message = info.value.errors[0]
    assert message.startswith(f"{path}: line 4, column 1: ")
    assert SECRET not in message


def test_yaml_duplicate_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("streams:\n  - name: a\n    name: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.errors == [f"{path}: line 3, column 5: duplicate key 'name'"]


def test_a_json_config_reads_as_its_yaml_twin(tmp_path: Path) -> None:
    """JSON is read by the JSON parser (fast for generated configs), with the same result as
    YAML; a duplicate key there is still an error that says where (the YAML loader's), and a
    YAML flow mapping that starts like JSON is YAML."""
    import json

    doc = {"store": "sqlite:///x.db", "connect_rate": 2000, "streams": [
        {**WS, "name": f"s{i}", "headers": {"X-N": str(i)}, "stall_timeout": "5s"}
        for i in range(3)]}  # fmt: skip
    as_json, as_yaml = tmp_path / "c.json", tmp_path / "c.yaml"
    as_json.write_text(json.dumps(doc, indent=1))
    as_yaml.write_text(yaml.safe_dump(doc))
    assert load_config(as_json, env={}) == load_config(as_yaml, env={})
    dup = tmp_path / "dup.json"
    dup.write_text('{"streams": [{"name": "a",\n "name": "b"}]}')
    with pytest.raises(ConfigError) as info:
        load_config(dup, env={})
    assert info.value.errors == [f"{dup}: line 2, column 2: duplicate key 'name'"]
    flow = tmp_path / "flow.yaml"
    flow.write_text("{streams: [{name: a, transport: ws, url: 'wss://h/x'}]}")
    assert load_config(flow, env={}).streams[0].name == "a"


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.errors == [f"{missing}: cannot read: No such file or directory"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError) as info:
        load_config(empty)
    assert info.value.errors == ["(root): the config is empty; it needs at least a `streams` list"]


def test_config_error_str_joins_lines() -> None:
    e = ConfigError(["a: one", "b: two"])
    assert (str(e), e.errors) == ("a: one\nb: two", ["a: one", "b: two"])


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    models = (
        Config, WriterConfig, StreamConfig, ResumeConfig, BackoffConfig, HttpConfig, TlsConfig
    )
    missing = [
        f"{m.__name__}.{field}"
        for m in models
        for field in m.model_fields
        if f"`{field}`" not in doc
    ]
    assert missing == []


def test_read_only_needs_only_the_stores_variables() -> None:
    data = {
        "store": "sqlite:///${DB_DIR}/x.db",
        "streams": [{"name": "a", "transport": "sse", "url": "https://h/?t=${FEED_TOKEN}",
                     "headers": {"Authorization": "Bearer ${FEED_TOKEN}"}}],
        "processors": [{"name": "p", "kind": "webhook", "url": "https://hook/",
                        "secret": "${HOOK_SECRET}"}],
    }
    cfg = parse_config(data, {"DB_DIR": "/var/lib"}, read_only=True)
    assert cfg.store == "sqlite:////var/lib/x.db"
    assert [p.name for p in cfg.processors] == ["p"]
    with pytest.raises(ConfigError) as e:  # capture and delivery still need every variable
        parse_config(data, {"DB_DIR": "/var/lib"})
    assert "streams[0].headers.Authorization: environment variable FEED_TOKEN is not set" in str(
        e.value)
    with pytest.raises(ConfigError, match="store: environment variable DB_DIR is not set"):
        parse_config(data, {}, read_only=True)
    # A variable that is a whole URL is needed to validate it, read-only or not: named as such.
    whole = {**data, "processors": [{"name": "p", "kind": "webhook", "url": "${HOOK_URL}"}]}
    with pytest.raises(ConfigError) as e:
        parse_config(whole, {"DB_DIR": "/d"}, read_only=True)
    assert e.value.errors == ["processors[0].url: environment variable HOOK_URL is not set"]


@pytest.mark.parametrize("text", ["{[a]: 1}\n", "streams:\n  - ? {x: 1}\n    : 2\n"])
def test_yaml_list_or_mapping_keys_are_errors_not_crashes(text: str) -> None:
    """Found by the reliability campaign's fuzzing: an unhashable key raised TypeError."""
    with pytest.raises(ConfigError) as info:
        loads_config(text, "k.yaml", env={})
    [message] = info.value.errors
    assert message.startswith("k.yaml: line ") and message.endswith("a key must be a plain value")


def test_ws_options_compression() -> None:
    ws = {**WS, "options": {"compression": False}}
    assert parse_config(cfg(ws)).streams[0].transport_options.model_dump() == {
        "compression": False
    }
    assert errors(cfg({**WS, "options": {"compresion": False}})) == [
        "streams[0].options.compresion: unknown key (did you mean compression?)"
    ]
    assert errors(cfg({**WS, "options": {"compression": "sometimes"}})) == [
        "streams[0].options.compression: expected true or false"
    ]
    # Streams that set no options share one default instance (no model per idle stream).
    two = parse_config(cfg(WS, {**WS, "name": "ws2"})).streams
    assert two[0].transport_options is two[1].transport_options
    assert two[0].transport_options.model_dump() == {"compression": True}
