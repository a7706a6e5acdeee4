"""Command-line option types shared by every ``longline`` command.

One duration type, so that ``--duration``, ``--lease-ttl``, ``--timeout`` ... all read what a
config file reads (``90``, ``90s``, ``5m``, ``1h30m``), and ``--log-level`` and
``--log-format`` options that work on the group and on each subcommand, and from
``LONGLINE_LOG_LEVEL`` and ``LONGLINE_LOG_FORMAT``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import click

from longline.core.units import format_duration, parse_duration, parse_duration_exact

__all__ = [
    "DURATION",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Duration",
    "log_format_option",
    "log_json",
    "log_level_of",
    "log_level_option",
]

F = TypeVar("F", bound=Callable[..., Any])
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_ENV = "LONGLINE_LOG_LEVEL"
LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "LONGLINE_LOG_FORMAT"


if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older releases are not subscriptable
    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    """Seconds, written as a config duration: ``90``, ``1.5``, ``90s``, ``500ms``, ``5m``, ``1h``.

    ``minimum`` (seconds) is checked here so every option says the same thing when too small;
    ``exact`` gives a ``Decimal`` instead of a float (``longline cost`` computes with them).
    """

    name = "duration"

    def __init__(self, minimum: float = 0.0, *, exact: bool = False) -> None:
        self.minimum = minimum
        self.exact = exact

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Decimal if self.exact else float):
            return value
        try:
            seconds = (parse_duration_exact if self.exact else parse_duration)(value)
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


def _remember_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Store the format on the root context: the last one given (group or subcommand) wins."""
    if value is not None:
        ctx.find_root().meta["longline.log_format"] = value.lower()
    return value


def log_format_option(*, group: bool = False) -> Callable[[F], F]:
    """``--log-format text|json``, default text; like ``--log-level``, on the group it also
    reads ``LONGLINE_LOG_FORMAT`` and on a subcommand it overrides both."""
    return click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS, case_sensitive=False),
        default=None,
        envvar=LOG_FORMAT_ENV if group else None,
        show_envvar=group,
        expose_value=False,
        is_eager=True,
        callback=_remember_format,
        help="Log lines as text (rich on a terminal) or one JSON object per line "
        "[default: text].",
    )


def log_json(ctx: click.Context) -> bool:
    """True when ``--log-format json`` (before or after the subcommand) or the environment
    asked for JSON log lines."""
    return bool(ctx.find_root().meta.get("longline.log_format") == "json")
