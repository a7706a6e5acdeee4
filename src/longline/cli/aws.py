"""The AWS commands: ``longline deploy`` (print a deployment option's template) and
``longline lambda-sim`` (run the Lambda orchestrations locally)."""

from __future__ import annotations

import asyncio
import math
import re
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console

from longline.aws.deploy import OPTIONS, DeployError, check_size, prepare_config
from longline.aws.sim.lambda_sim import LambdaSim
from longline.aws.templates import Settings, build, render
from longline.aws.templates.common import NAME_PATTERN
from longline.cli.options import DURATION
from longline.core.units import parse_duration

__all__ = ["deploy_command", "lambda_sim_command"]


class _ConfigProblem(click.ClickException):
    """A configuration the template cannot embed: exit 2, like the other commands' config errors."""

    exit_code = 2


def _margin(seconds: float) -> int:
    """``--margin`` in whole seconds; at most half the timeout, so each invocation does work."""
    if not 1 <= seconds <= 450:
        raise click.BadParameter(
            "must be between 1s and 450s (half the 900 s Lambda timeout)", param_hint="--margin"
        )
    return math.ceil(seconds)


@click.command("deploy")
@click.option(
    "--option",
    "option",
    required=True,
    type=click.Choice(list(OPTIONS)),
    help="; ".join(f"{k}: {v}" for k, v in OPTIONS.items()),
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Check this longline config and embed it (its ${VAR}s become NoEcho parameters).",
)
@click.option(
    "--name",
    default="longline",
    show_default=True,
    help="Default resource-name and table prefix (stack parameters Name and TablePrefix).",
)
@click.option(
    "--margin",
    type=DURATION,
    default="60s",
    show_default=True,
    help="Lambda: hand over this long before the 900 s timeout (Step Functions waits "
    "900 s minus this between invocations).",
)
@click.option(
    "--code-uri",
    default="build",
    show_default=True,
    help="Lambda code: a directory holding longline and its dependencies, or s3://...",
)
def deploy_command(
    option: str, config_path: Path | None, name: str, margin: float, code_uri: str
) -> None:
    """Print the CloudFormation/SAM template of deployment OPTION (redirect it to a file).

    Then, for example: sam deploy --template-file template.yaml --stack-name longline
    --capabilities CAPABILITY_IAM --resolve-s3 (see docs/aws.md).
    """
    if not re.fullmatch(NAME_PATTERN.strip("^$"), name):
        raise click.BadParameter(
            "3-32 characters: a letter, then letters, digits or -", param_hint="--name"
        )
    margin_s = _margin(margin)
    number = int(option)
    config: str | None = None
    secrets: tuple[str, ...] = ()
    if config_path is not None:
        try:
            config, secrets, notes = prepare_config(config_path, number)
            check_size(number, config)
        except DeployError as e:
            raise _ConfigProblem(str(e)) from None
        for note in notes:
            click.echo(f"note: {note}", err=True)
    settings = Settings(
        name=name, config=config, secrets=secrets, margin_s=margin_s, code_uri=code_uri
    )
    click.echo(render(build(number, settings)), nl=False)


def _parse_kill(values: tuple[str, ...]) -> dict[int, float]:
    """``--kill N@DURATION`` values as {invocation number: seconds after it started}."""
    out = {}
    for v in values:
        n, _, when = v.partition("@")
        if not n.isdigit() or not when:
            raise ValueError(f"--kill takes N@DURATION (e.g. 3@2s), not {v!r}")
        out[int(n)] = parse_duration(when)
    return out


@click.command("lambda-sim")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--mode", type=click.Choice(["self", "stepfunctions"]), default="self", show_default=True
)
@click.option(
    "--timeout",
    type=DURATION,
    default="20s",
    show_default=True,
    help="Function timeout (Lambda's maximum is 15m).",
)
@click.option(
    "--margin",
    type=DURATION,
    default="5s",
    show_default=True,
    help="Remaining time at which the handoff starts.",
)
@click.option(
    "--duration",
    type=DURATION,
    default="120s",
    show_default=True,
    help="How long to keep the chain going.",
)
@click.option(
    "--watchdog", type=DURATION, default=None, help="Watchdog schedule period (self mode)."
)
@click.option("--lease-ttl", type=DURATION, default=None, help="Lease time-to-live.")
@click.option(
    "--kill",
    multiple=True,
    metavar="N@DURATION",
    help="SIGKILL invocation N that long after it started (chaos testing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def lambda_sim_command(
    config: Path,
    mode: str,
    timeout: float,
    margin: float,
    duration: float,
    watchdog: float | None,
    lease_ttl: float | None,
    kill: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run CONFIG as chained Lambda invocations locally, with real deadlines."""
    try:
        sim = LambdaSim(
            config,
            mode=mode,
            timeout=timeout,
            margin=margin,
            duration=duration,
            watchdog_every=watchdog,
            lease_ttl=lease_ttl,
            kill=_parse_kill(kill),
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    report = asyncio.run(sim.run())
    summary = report.summary()
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        console = Console()
        for inv in report.invocations:
            res = inv.result or {}
            took = (inv.ended or inv.started) - inv.started
            how = f"killed ({inv.killed})" if inv.killed else res.get("outcome", "-")
            console.print(
                f"invocation {inv.n:3}: {took:5.1f}s {how}"
                f" epochs {res.get('epochs', '-')} events {res.get('events', '-')}"
            )
        console.print(
            f"{summary['invocations']} invocations, {summary['handoffs']} "
            f"handoffs, errors: {summary['errors'] or 'none'}; logs in "
            f"{sim.log_dir}"
        )
    sys.exit(1 if summary["errors"] else 0)
