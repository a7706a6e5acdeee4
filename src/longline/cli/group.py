"""The ``longline`` command group: every command registered from its module, and the one-line
error (exit 1) for what a user can act on, whichever command raised it."""

from __future__ import annotations

from typing import Any

import click

from longline.cli import capture, delivery, read
from longline.cli.common import fail, user_error
from longline.cli.options import log_format_option, log_level_option

__all__ = ["main"]


class _Main(click.Group):
    """The command group; every subcommand's actionable errors become one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as e:
            line = user_error(e)
            if line is None:
                raise
            where = ctx.obj.get("config") if isinstance(ctx.obj, dict) else None
            fail(f"{where}: {line}" if where else line, 1)


@click.group(cls=_Main)
@click.version_option(package_name="longline")
@log_level_option(group=True)
@log_format_option(group=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep outbound event streams alive and store every event exactly once."""
    ctx.ensure_object(dict)  # load_config_or_exit records the config path for the error line


def _register() -> None:
    """Every command, from the module of its group; those of optional parts load here too."""
    from longline.cli.aws import deploy_command, lambda_sim_command
    from longline.cli.cost import cost_command
    from longline.cli.demo import demo
    from longline.cli.provider import provider_command

    for command in (capture.run, capture.init, capture.check, read.events, read.status, demo):
        main.add_command(command)
    main.add_command(provider_command, "provider")
    main.add_command(cost_command, "cost")
    main.add_command(lambda_sim_command, "lambda-sim")
    main.add_command(deploy_command, "deploy")
    main.add_command(delivery.dispatch_command, "dispatch")
    main.add_command(delivery.deadletters_command, "deadletters")
    main.add_command(delivery.replay_command, "replay")
    main.add_command(read.tail_command, "tail")
    for command in main.commands.values():  # --log-level and --log-format also after it
        if not any(p.name == "log_level" for p in command.params):
            log_level_option()(command)
        if not any(p.name == "log_format" for p in command.params):
            log_format_option()(command)


_register()
