"""Command-line option types shared by every ``longline`` command.

One duration type, so that ``--duration``, ``--lease-ttl``, ``--timeout`` ... all read what a
config file reads (``90``, ``90s``, ``5m``, ``1h30m``), and one ``--log-level`` option that
works on the group and on each subcommand, and from ``LONGLINE_LOG_LEVEL``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from longline.core.units import format_duration, parse_duration

__all__ = ["DURATION", "LOG_LEVELS", "Duration", "log_level_of", "log_level_option"]

F = TypeVar("F", bound=Callable[..., Any])
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_ENV = "LONGLINE_LOG_LEVEL"


if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older releases are not subscriptable
    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    """Seconds, written as a config duration: ``90``, ``1.5``, ``90s``, ``500ms``, ``5m``, ``1h``.

    ``minimum`` (seconds) is checked here so every option says the same thing when too small.
    """

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"must be at least {format_duration(self.minimum)}", param, ctx)
        return seconds

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"


DURATION = Duration()


def _remember_level(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Store the level on the root context: the last one given (group or subcommand) wins."""
    root = ctx.find_root()
    root.meta.setdefault("longline.log_level", "INFO")
    if value is not None:
        root.meta["longline.log_level"] = value.upper()
    return value


def log_level_option(*, group: bool = False) -> Callable[[F], F]:
    """``--log-level``, default INFO. On the group it also reads ``LONGLINE_LOG_LEVEL``; on a
    subcommand it overrides both (so the command line always beats the environment)."""
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=None,
        envvar=LOG_LEVEL_ENV if group else None,
        show_envvar=group,
        expose_value=False,
        is_eager=True,
        callback=_remember_level,
        help="Log level [default: INFO].",
    )


def log_level_of(ctx: click.Context) -> str:
    """The level chosen by ``--log-level`` (before or after the subcommand) or the environment."""
    level: str = ctx.find_root().meta.get("longline.log_level", "INFO")
    return level
