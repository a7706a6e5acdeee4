"""What every command shares: loading the config (exit 2 with field-named errors), the one-line
error for what a user can act on, the ``--http`` option, and the hard exit after a stuck store."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from longline.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from longline.ops.listen import Listen

__all__ = [
    "HTTP_OPTION",
    "exit_now",
    "fail",
    "listen_of",
    "load_config_or_exit",
    "user_error",
]


def load_config_or_exit(path: str, *, read_only: bool = False) -> Config:
    """Load a config or exit 2 with the field-named errors (no traceback). ``read_only``: for
    commands that only read the store, which need no stream or processor credentials.

    Also records ``path`` for the error line of the group (``cli.group``).
    """
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj["config"] = path
    try:
        cfg = load_config(path, read_only=read_only)
    except ConfigError as e:
        fail(f"{path}: invalid configuration:\n{e}", 2)
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}", 2)
    if cfg.store.lower().startswith("memory:"):
        # Fine from Python (tests, the API); from a command it would keep nothing.
        fail(f"{path}: store: memory:// lives in one process; a command needs a real store", 2)
    return cfg


def fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def user_error(exc: BaseException) -> str | None:
    """The one line to print for an error the user can act on, or None for a bug.

    A store that cannot be opened or used (unreachable, missing directory, driver not
    installed) and a processor kind whose client library is missing are the user's to fix;
    anything else keeps its traceback.
    """
    from longline.core.extras import MissingExtra
    from longline.ops.listen import ListenError
    from longline.stores.base import StoreError

    if isinstance(exc, StoreError):
        return f"store: {exc}"
    if isinstance(exc, MissingExtra | ListenError):
        return str(exc)
    return None


def listen_of(cfg: Config, path: str, flag: str | None) -> Listen | None:
    """The operators' listener ``--http`` or ``http.listen`` asks for; exit 2 when refused."""
    from longline.ops.listen import ListenError, listen_settings

    try:
        return listen_settings(cfg, flag)
    except ListenError as e:
        fail(f"{path}: {e}", 2)


HTTP_OPTION = click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    default=None,
    help="Serve /metrics, /healthz, /readyz and the status page here (wins over http.listen).",
)


def exit_now(code: int) -> NoReturn:
    """Exit without waiting for a store call stuck in a driver thread (it cannot be cancelled,
    and the interpreter would join its thread): what it held was counted as uncommitted."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
