"""The entry-point registries (``longline.plugins``): built-ins declared like plugins, loaded
lazily, and clear errors for a kind that is unknown, registered twice or broken."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from longline.config import ConfigError, parse_config
from longline.plugins import BUILTINS, GROUPS, PluginError
from longline.sessions.registry import REGISTRY as SESSIONS
from longline.sessions.registry import load_preset, preset_names
from longline.transports.registry import REGISTRY as TRANSPORTS

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_declares_exactly_the_builtin_table() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {g: e for g, e in project["entry-points"].items() if g.startswith("longline.")}
    assert list(declared) == list(GROUPS) == list(BUILTINS)
    assert {g: dict(declared[g]) for g in GROUPS} == BUILTINS
    for group in GROUPS:  # same order: it is the order kinds are listed in
        assert list(declared[group]) == list(BUILTINS[group])


def test_a_config_loads_only_the_kinds_it_names() -> None:
    code = textwrap.dedent(
        """
        import sys
        from longline.config import parse_config
        parse_config({"streams": [{"name": "s", "transport": "lines", "url": "http://h/x"}],
                      "processors": [{"name": "p", "kind": "python", "target": "m:f"}]})
        print(sorted(m for m in sys.modules if m.startswith(("longline.processors.",
              "longline.transports.", "longline.stores.postgres", "longline.stores.dynamodb"))))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(done.stdout)
    assert "longline.processors.python" in loaded and "longline.transports.stream" in loaded
    for unused in ("aws", "redis", "nats", "webhook", "command"):
        assert f"longline.processors.{unused}" not in loaded
    assert "longline.transports.ws" not in loaded
    backends = ("longline.stores.postgres", "longline.stores.dynamodb")
    assert not any(m.startswith(backends) for m in loaded)


@pytest.fixture
def fake_plugins(tmp_path: Path) -> Iterator[Path]:
    """A directory on ``sys.path`` for hand-made distributions (metadata + modules)."""
    sys.path.insert(0, str(tmp_path))
    TRANSPORTS.refresh()
    SESSIONS.refresh()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("llfake_")]:
            del sys.modules[name]
        TRANSPORTS.refresh()
        SESSIONS.refresh()


def distribution(
    site: Path, name: str, entries: dict[str, str], module: str = "", group: str = "transports"
) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"[longline.{group}]"] + [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if module:
        (site / f"{name}.py").write_text(module)


def stream(transport: str) -> dict[str, object]:
    return {"streams": [{"name": "s", "transport": transport, "url": "http://h/x"}]}


def errors(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    return info.value.errors


def test_broken_plugins_are_named_errors_not_tracebacks(fake_plugins: Path) -> None:
    distribution(
        fake_plugins,
        "llfake_missing",
        {"needs-driver": "llfake_missing:KIND"},
        "import llfake_no_such_driver\n",
    )
    distribution(fake_plugins, "llfake_wrong", {"wrong": "llfake_wrong:KIND"}, "KIND = 3\n")
    distribution(fake_plugins, "llfake_twice", {"sse": "llfake_twice:KIND"}, "KIND = 3\n")
    TRANSPORTS.refresh()
    assert {"needs-driver", "wrong"} <= set(TRANSPORTS.names()[3:])
    assert errors(stream("needs-driver")) == [
        "streams[0].transport: transport 'needs-driver' cannot be loaded from "
        "llfake_missing:KIND: module 'llfake_no_such_driver' is not installed"
    ]
    assert errors(stream("wrong")) == [
        "streams[0].transport: transport 'wrong': llfake_wrong:KIND is a int, not a TransportKind"
    ]
    with pytest.raises(PluginError, match="'sse' is registered more than once: "):
        TRANSPORTS.get("sse")
    # A kind nobody names is never loaded: the broken ones do not disturb other streams.
    distribution(fake_plugins, "llfake_ok", {}, "")
    TRANSPORTS.refresh()
    assert parse_config(stream("lines"), env={}).streams[0].transport == "lines"


def test_a_plugin_session_preset_is_found_by_name(fake_plugins: Path) -> None:
    module = "from longline.sessions import Session\nclass OAuth2(Session):\n    pass\n"
    distribution(
        fake_plugins, "llfake_session", {"oauth2": "llfake_session:OAuth2"}, module, "sessions"
    )
    SESSIONS.refresh()
    assert preset_names() == [*BUILTINS["longline.sessions"], "oauth2"]
    assert load_preset("oauth2").__name__ == "OAuth2"
    config = parse_config(ws_session({"preset": "oauth2"}), env={})
    session = config.streams[0].session
    assert session is not None and session.session_class.__name__ == "OAuth2"


def ws_session(session: dict[str, object]) -> dict[str, object]:
    return {
        "streams": [
            {"name": "s", "transport": "ws", "url": "ws://127.0.0.1:9/x", "session": session}
        ]
    }


def test_broken_session_plugins_are_named_errors_not_tracebacks(fake_plugins: Path) -> None:
    distribution(
        fake_plugins,
        "llfake_sess_missing",
        {"needs-sdk": "llfake_sess_missing:Session"},
        "import llfake_no_such_sdk\n",
        "sessions",
    )
    distribution(
        fake_plugins,
        "llfake_sess_wrong",
        {"not-a-session": "llfake_sess_wrong:Thing"},
        "class Thing:\n    pass\n",
        "sessions",
    )
    distribution(
        fake_plugins,
        "llfake_sess_boom",
        {"boom": "llfake_sess_boom:Session"},
        "raise RuntimeError('no config here')\n",
        "sessions",
    )
    SESSIONS.refresh()
    assert errors(ws_session({"preset": "needs-sdk"})) == [
        "streams[0].session.preset: session preset 'needs-sdk' cannot be loaded from "
        "llfake_sess_missing:Session: module 'llfake_no_such_sdk' is not installed"
    ]
    assert errors(ws_session({"preset": "not-a-session"})) == [
        "streams[0].session.preset: session preset 'not-a-session': "
        "llfake_sess_wrong:Thing is not a Session subclass"
    ]
    assert errors(ws_session({"preset": "boom"})) == [
        "streams[0].session.preset: session preset 'boom' cannot be loaded from "
        "llfake_sess_boom:Session: RuntimeError: no config here"
    ]
    names = ", ".join(preset_names())
    assert errors(ws_session({"preset": "nope"})) == [
        f"streams[0].session.preset: unknown session preset 'nope'; available: {names}"
    ]
    # The broken ones disturb no other stream: a built-in preset still loads.
    assert load_preset("slack-socket-mode").__name__ == "SlackSocketMode"


def test_a_plugin_registering_a_builtin_preset_name_is_an_error(fake_plugins: Path) -> None:
    module = "from longline.sessions import Session\nclass Fake(Session):\n    pass\n"
    distribution(
        fake_plugins,
        "llfake_sess_twice",
        {"slack-socket-mode": "llfake_sess_twice:Fake"},
        module,
        "sessions",
    )
    SESSIONS.refresh()
    assert preset_names() == list(BUILTINS["longline.sessions"])
    [line] = errors(ws_session({"preset": "slack-socket-mode"}))
    head = "streams[0].session.preset: session preset 'slack-socket-mode' is registered more "
    assert line.startswith(f"{head}than once: ")
    # Both registrations named (their order follows sys.path), never one silently shadowed.
    where = line.removeprefix(f"{head}than once: ").split(", ")
    assert sorted(w.split(" (")[-1] for w in where) == [
        "llfake_sess_twice:Fake)",
        "longline.sessions.presets.slack:SlackSocketMode)",
    ]
