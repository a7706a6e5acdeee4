"""The ``processors:`` section: the kind union, common defaults, field-named errors, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from longline.config import SENSITIVE_HEADERS, ConfigError, parse_config
from longline.processors import registry
from longline.processors.command import CommandSettings
from longline.processors.python import PythonSettings
from longline.processors.webhook import WebhookSettings

STREAMS = [
    {"name": "wiki", "transport": "sse", "url": "https://example.org/a"},
    {"name": "trades", "transport": "sse", "url": "https://example.org/b"},
]


def parse(*procs: Any, env: dict[str, str] | None = None) -> Any:
    return parse_config({"streams": STREAMS, "processors": list(procs)}, env=env or {})


def errors(*procs: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(*procs, env=env)
    return info.value.errors


def test_builtin_kinds_are_registered_in_order() -> None:
    assert list(registry.kinds())[:3] == ["python", "webhook", "command"]
    assert registry.SENSITIVE_HEADERS == SENSITIVE_HEADERS


def test_no_processors_by_default() -> None:
    assert parse_config({"streams": STREAMS}).processors == []


def test_common_defaults_and_kind_models() -> None:
    cfg = parse(
        {"name": "enrich", "kind": "python", "target": "mypkg.handlers:handle"},
        {"name": "hook", "kind": "webhook", "url": "https://h.example/x", "streams": ["wiki"]},
        {"name": "cmd", "kind": "command", "argv": ["cat"], "batch": 5},
    )
    p, w, c = cfg.processors
    assert isinstance(p, PythonSettings) and p.target == "mypkg.handlers:handle"
    assert (p.streams, p.batch) == (None, 100)
    assert (p.retry.max_attempts, p.retry.initial, p.retry.max) == (8, 1.0, 300.0)
    assert isinstance(w, WebhookSettings) and (w.streams, w.timeout) == (["wiki"], 10.0)
    assert isinstance(c, CommandSettings) and (c.argv, c.batch, c.timeout) == (["cat"], 5, 60.0)


def test_retry_durations_use_units() -> None:
    retry = {"max_attempts": 3, "initial": "250ms", "max": "1m"}
    (p,) = parse({"name": "p", "kind": "python", "target": "m:f", "retry": retry}).processors
    assert (p.retry.max_attempts, p.retry.initial, p.retry.max) == (3, 0.25, 60.0)


def test_unknown_stream_names_the_list_item() -> None:
    assert errors({"name": "p", "kind": "python", "target": "m:f", "streams": ["wiki", "x"]}) == [
        "processors[0].streams[1]: no stream named 'x' (streams: wiki, trades)"
    ]


def test_duplicate_processor_names() -> None:
    p = {"name": "p", "kind": "python", "target": "m:f"}
    assert errors(p, p) == ["processors[1].name: duplicate name (also processors[0])"]


def test_unknown_or_missing_kind() -> None:
    tags = ", ".join(registry.kinds())
    assert errors({"name": "p", "kind": "kafka"}) == [
        f"processors[0].kind: unknown kind; must be one of {tags}"
    ]
    assert errors({"name": "p"}) == [f"processors[0].kind: required: one of {tags}"]


def test_misspelt_kind_gets_did_you_mean_without_echoing_the_input() -> None:
    tags = ", ".join(registry.kinds())
    assert errors({"name": "p", "kind": "webhok", "url": "https://h/x"}) == [
        f"processors[0].kind: unknown kind (did you mean webhook?); must be one of {tags}"
    ]
    assert errors({"name": "p", "kind": "Redis"}) == [
        f"processors[0].kind: unknown kind (did you mean redis?); must be one of {tags}"
    ]


def test_field_errors_name_the_field_without_the_kind_tag() -> None:
    got = errors(
        {"name": "p", "kind": "python", "target": "not a target", "batch": 0},
        {"name": "w", "kind": "webhook", "url": "ftp://x", "timout": 3},
        {"name": "c", "kind": "command", "argv": [], "retry": {"initial": "5m", "max": "1s"}},
    )
    assert got == [
        "processors[0].batch: must be >= 1",
        'processors[0].target: must look like "package.module:function"',
        "processors[1].url: must be an http:// or https:// URL",
        "processors[1].timout: unknown key (did you mean timeout?)",
        "processors[2].retry: initial must be <= max",
        "processors[2].argv: must start with a program: [program, arg, ...]",
    ]


def test_secrets_are_collected_and_interpolated() -> None:
    env = {"HOOK_SECRET": "s3cr3t-hook", "TOKEN": "tok-123"}
    cfg = parse(
        {
            "name": "w",
            "kind": "webhook",
            "url": "https://user:pa55word@h.example/x",
            "secret": "${HOOK_SECRET}",
            "headers": {"Authorization": "Bearer ${TOKEN}", "X-Env": "prod"},
        },
        env=env,
    )
    (w,) = cfg.processors
    assert w.secret == "s3cr3t-hook" and w.headers["Authorization"] == "Bearer tok-123"
    assert {"s3cr3t-hook", "tok-123", "pa55word", "Bearer tok-123"} <= cfg.secrets
    assert "prod" not in cfg.secrets
    dumped = str(cfg.redacted())
    assert "s3cr3t-hook" not in dumped and "pa55word" not in dumped and "tok-123" not in dumped


def test_missing_env_var_in_a_processor_names_the_field() -> None:
    got = errors({"name": "w", "kind": "webhook", "url": "https://h/x", "secret": "${NOPE}"})
    assert got == ["processors[0].secret: environment variable NOPE is not set"]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "processors.md"
COMMON = set(registry.ProcessorSettings.model_fields)


def _sections() -> dict[str, str]:
    parts = re.split(r"^## (\S+)\n", DOCS.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("kind", registry.REGISTRY.builtin_names())
def test_every_kind_and_field_is_documented(kind: str) -> None:
    section = _sections().get(kind, "")
    assert section.strip() not in ("", "TODO"), f"docs/processors.md: no section ## {kind}"
    fields = set(registry.REGISTRY.get(kind).model.model_fields) - COMMON
    missing = sorted(f for f in fields if f"{f}:" not in section and f"`{f}`" not in section)
    assert missing == []


def test_common_fields_are_documented() -> None:
    head = DOCS.read_text().split("\n## ", 1)[0]
    assert sorted(f for f in COMMON if f"`{f}" not in head) == []
