"""A consistent command line: one duration syntax everywhere, refused arguments with exact
messages and exit 2, and ``python -m longline.cli`` as the CLI."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from longline.cli import main
from longline.cli.options import DURATION, Duration
from longline.stores import SQLiteStore

DUMMY_URL = "http://127.0.0.1:9/sse/unused"


def all_commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, cmd in group.commands.items():
        out[prefix + name] = cmd
        if isinstance(cmd, click.Group):
            out |= all_commands(cmd, f"{prefix}{name} ")
    return out


DURATION_OPTIONS = {
    ("run", "duration"), ("run", "lease_ttl"), ("dispatch", "duration"), ("demo", "duration"),
    ("lambda-sim", "duration"), ("lambda-sim", "timeout"), ("lambda-sim", "margin"),
    ("lambda-sim", "watchdog"), ("lambda-sim", "lease_ttl"), ("deploy", "margin"),
    ("provider", "refresh_every"), ("cost", "handoff_interval"), ("cost", "overlap"),
    ("cost", "batch_window"), ("cost", "processor_duration"), ("cost", "cpu_per_event"),
}  # fmt: skip
# What an option's help says when it takes a time: found by meaning, not by the option's name
# (`--refresh-every` and `cost --overlap` were missed that way). "per second" is a rate.
SAYS_TIME = re.compile(
    r"\b(how long|this long|that long|time|timeout|interval|period|overlap|window"
    r"|(?<!per )(seconds?|minutes?|hours?|days?))\b|e\.g\. [0-9.]+(us|µs|ms|s|m|h|d)\b",
    re.IGNORECASE,
)
# Options whose help speaks of time but that are not one duration, and why.
NOT_A_DURATION = {
    ("cost", "days"): "a count of days, the cost model's unit for the period priced",
    ("cost", "retention_days"): "a count of days, as the model prices retention",
    ("lambda-sim", "kill"): "N@DURATION: the DURATION part goes through parse_duration",
}


def test_every_duration_option_uses_the_duration_type() -> None:
    options = [
        (name, p)
        for name, cmd in all_commands(main).items()
        for p in cmd.params
        if isinstance(p, click.Option)
    ]
    found = {(name, p.name) for name, p in options if isinstance(p.type, Duration)}
    assert found == DURATION_OPTIONS
    # The detector sees every known duration, so it would see one that lost its type...
    says_time = {(name, p.name) for name, p in options if SAYS_TIME.search(p.help or "")}
    assert says_time >= DURATION_OPTIONS
    # ... and no option that speaks of time takes anything else (a float, its own parser).
    assert says_time - DURATION_OPTIONS == set(NOT_A_DURATION)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1.5", 1.5), ("500ms", 0.5), ("5m", 300.0), ("1h", 3600.0),
     ("1h30m", 5400.0), ("1d", 86400.0), ("9us", 9e-6), ("2min", 120.0)],
)  # fmt: skip
def test_duration_syntax_is_the_configs(text: str, seconds: float) -> None:
    assert DURATION.convert(text, None, None) == seconds


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [(["provider", "--refresh-every", "5s"], "refresh_every", 5.0),
     (["provider", "--refresh-every", "1m30s"], "refresh_every", 90.0),
     (["cost", "--handoff-interval", "1h30m"], "handoff_interval", Decimal(5400)),
     (["cost", "--overlap", "1d"], "overlap", Decimal(86400)),
     (["cost", "--batch-window", "100ms"], "batch_window", Decimal("0.1")),
     (["cost", "--cpu-per-event", "9us"], "cpu_per_event", Decimal("0.000009")),
     (["cost", "--cpu-per-event", "9µs"], "cpu_per_event", Decimal("0.000009"))],
)  # fmt: skip
def test_provider_and_cost_take_the_config_duration_syntax(
    args: list[str], field: str, value: float | Decimal
) -> None:
    cmd = all_commands(main)[args[0]]
    ctx = cmd.make_context(args[0], args[1:], resilient_parsing=True)
    assert ctx.params[field] == value
    assert type(ctx.params[field]) is type(value)  # cost prices with exact decimals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "c.yaml", "--duration", "5x"],
         "Invalid value for '--duration': invalid duration '5x'; expected a number of seconds "
         "or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"),
        (["dispatch", "c.yaml", "--duration", "-1"],
         "Invalid value for '--duration': negative duration '-1'; expected a number of seconds "
         "or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"),
        (["demo", "--duration", "soon"],
         "Invalid value for '--duration': invalid duration 'soon'; expected a number of seconds "
         "or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"),
        (["run", "c.yaml", "--worker", "--lease-ttl", "100ms"],
         "Invalid value for '--lease-ttl': must be at least 300ms"),
        (["events", "c.yaml", "--stream", "s", "--limit", "-1"],
         "Invalid value for '--limit': -1 is not in the range x>=0."),
        (["replay", "c.yaml", "--processor", "p", "--stream", "s", "--from-seq", "9",
          "--to-seq", "3"],
         "Invalid value for --from-seq/--to-seq: --from-seq 9 is after --to-seq 3"),
        (["--log-level", "chatty", "status", "c.yaml"],
         "Invalid value for '--log-level' (env var: 'LONGLINE_LOG_LEVEL'): 'chatty' is not one "
         "of 'debug', 'info', 'warning', 'error'."),
        (["status", "c.yaml", "--log-level", "chatty"],
         "Invalid value for '--log-level': 'chatty' is not one of 'debug', 'info', 'warning', "
         "'error'."),
    ],
)  # fmt: skip
def test_refused_arguments_exit_2_with_the_exact_message(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, args, env={"LONGLINE_LOG_LEVEL": ""})
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == f"Error: {message}"


def test_log_level_is_offered_on_every_command_the_same_way() -> None:
    for name, cmd in all_commands(main).items():
        if " " in name:
            continue  # subcommands of a group take it on the group
        (opt,) = [p for p in cmd.params if p.name == "log_level"]
        assert isinstance(opt.type, click.Choice), name
        assert list(opt.type.choices) == ["DEBUG", "INFO", "WARNING", "ERROR"]
        assert not opt.type.case_sensitive


def test_limit_zero_prints_nothing(tmp_path: Path) -> None:
    async def create() -> None:
        store = SQLiteStore(tmp_path / "x.db")
        await store.open()
        await store.close()

    asyncio.run(create())
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": f"sqlite:///{tmp_path / 'x.db'}",
                "streams": [{"name": "s", "transport": "sse", "url": DUMMY_URL}],
            }
        )
    )
    res = CliRunner().invoke(main, ["events", str(cfg), "--stream", "s", "--limit", "0"])
    assert (res.exit_code, res.stdout) == (0, "")


def test_python_m_longline_cli_is_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams: []\n")
    for module in ("longline", "longline.cli"):
        res = subprocess.run([sys.executable, "-m", module, "check", str(bad)],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert res.returncode == 2, module
        assert res.stderr == (
            f"{bad}: invalid configuration:\nstreams: at least one stream is required\n"
        ), module
        res = subprocess.run([sys.executable, "-m", module, "--help"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert res.returncode == 0 and "Usage: python -m " in res.stdout, module
