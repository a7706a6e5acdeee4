"""The config that ``longline deploy`` (``cli/aws.py``) embeds in a deployment option's template.

With ``--config`` the config is checked here (not at 3 a.m. in a Lambda log) and embedded: for
options 1-3 its store becomes the stack's DynamoDB tables (``${LONGLINE_STORE}``), and every
``${VAR}`` it references becomes a NoEcho stack parameter passed as an environment variable,
so secrets never land in the template. Without ``--config`` a ``LonglineConfig`` parameter
names the config (a packaged file by default).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from longline.aws.templates.common import secret_parameter
from longline.aws.templates.ec2 import USER_DATA_LIMIT, unit_text, user_data_script
from longline.config import ConfigError, load_config

__all__ = [
    "LAMBDA_ENV_BUDGET",
    "OPTIONS",
    "DeployError",
    "check_size",
    "prepare_config",
]

LAMBDA_ENV_BUDGET = 3 * 1024  # of the 4 KB a function's environment holds, leaving room for secrets
STACK_STORE = "${LONGLINE_STORE}"
_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER = "longline-deploy-placeholder"
_RUNTIME_VARS = ("AWS_", "LAMBDA_")  # set by Lambda/ECS themselves; reserved on Lambda
OPTIONS = {
    "1": "Lambda, self-chained, with a watchdog schedule",
    "2": "Lambda looped by Step Functions",
    "3": "ECS Fargate service holding the connections",
    "4": "one EC2 instance capturing and processing with SQLite",
}


class DeployError(Exception):
    """The config cannot be deployed with this option; the message says what to change."""


def _fields(data: Any) -> Iterator[tuple[str, Any]]:
    """(path, raw value) of every field where the config loader interpolates ``${VAR}``."""
    if not isinstance(data, dict):
        return
    yield "store", data.get("store")
    streams = data.get("streams")
    for i, stream in enumerate(streams if isinstance(streams, list) else []):
        if not isinstance(stream, dict):
            continue
        yield f"streams[{i}].url", stream.get("url")
        headers = stream.get("headers")
        for name, value in (headers if isinstance(headers, dict) else {}).items():
            yield f"streams[{i}].headers.{name}", value
        subscribe = stream.get("subscribe")
        for j, message in enumerate(subscribe if isinstance(subscribe, list) else []):
            yield f"streams[{i}].subscribe[{j}]", message


def _references(data: Any) -> dict[str, list[str]]:
    """The ``${VAR}`` names each interpolated field uses (``$${`` is a literal, not a use)."""
    out: dict[str, list[str]] = {}
    for path, value in _fields(data):
        if isinstance(value, str):
            names = [m.group(1) for m in _REF.finditer(value) if m.group(1)]
            if names:
                out[path] = names
    return out


def _validate(path: Path, refs: dict[str, list[str]], ignore: tuple[str, ...]) -> None:
    """Validate like ``longline run`` would, with placeholders for variables not set here.

    Errors in a field that uses a placeholder say nothing about the real value, and errors in
    ``ignore`` (a store the stack replaces) do not matter, so both are dropped; every other
    error stops the deploy.
    """
    names = {n for ns in refs.values() for n in ns}
    env = {n: os.environ.get(n, _PLACEHOLDER) for n in names}
    guessed = [p for p, ns in refs.items() if any(n not in os.environ for n in ns)]
    guessed += ignore
    try:
        load_config(path, env=env)
    except ConfigError as e:
        real = [m for m in e.errors if not any(m.startswith(p) for p in guessed)]
        if real:
            raise DeployError(f"{path}: invalid configuration:\n" + "\n".join(real)) from None


def _sqlite_path_ok(store: str) -> bool:
    """An option-4 SQLite store must live in /var/lib/longline (the only writable directory)."""
    path = store[len("sqlite:///") :].split("?", 1)[0]
    return not path.startswith("/") or path.startswith("/var/lib/longline/")


def prepare_config(path: Path, option: int) -> tuple[str, tuple[str, ...], list[str]]:
    """(config text to embed, secret variable names, notes for the user) for ``option``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DeployError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None  # load_config below reports where
    refs = _references(data)
    _validate(path, refs, () if option == 4 else ("store",))
    if not isinstance(data, dict):  # load_config refused it already; keeps mypy informed
        raise DeployError(f"{path}: expected a mapping")
    notes: list[str] = []
    store = str(data.get("store", "sqlite:///longline.db"))
    if option == 4:
        scheme = store.split("://", 1)[0].lower()
        if scheme == "dynamodb":
            raise DeployError("option 4 stores locally: use a sqlite:/// or postgresql:// store")
        if scheme == "sqlite" and not _sqlite_path_ok(store):
            raise DeployError(
                "option 4 runs with a read-only file system outside /var/lib/longline: use a "
                "relative sqlite:///NAME.db store (it lands in /var/lib/longline)"
            )
        embedded = text
    else:
        if store != STACK_STORE:
            notes.append(f"the config's store is replaced by the stack's tables ({STACK_STORE})")
            data["store"] = STACK_STORE
        refs.pop("store", None)
        embedded = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=10_000)
    names = list(dict.fromkeys(n for ns in refs.values() for n in ns))
    if option != 4:
        runtime = [n for n in names if n.startswith(_RUNTIME_VARS)]
        names = [n for n in names if n not in runtime]
        if runtime:
            notes.append(f"{', '.join(runtime)}: provided by the runtime, not a stack parameter")
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(secret_parameter(name), name)
        if other != name:
            raise DeployError(f"${{{name}}} and ${{{other}}} map to the same parameter name")
    if names:
        params = ", ".join(secret_parameter(n) for n in names)
        notes.append(f"set the NoEcho parameter(s) {params} when deploying")
    return embedded, tuple(names), notes


def check_size(option: int, config: str) -> None:
    size = len(config.encode())
    if option in (1, 2) and size > LAMBDA_ENV_BUDGET:
        raise DeployError(
            f"the config is {size} bytes once prepared; a Lambda environment holds 4 KB in all. "
            f"Put a copy whose store is {STACK_STORE} into the code directory as longline.yaml "
            "and deploy without --config (the LonglineConfig parameter defaults to that file)"
        )
    if option == 4:
        b64 = len(base64.b64encode(config.encode())) + len(base64.b64encode(unit_text().encode()))
        total = len(user_data_script()) + b64 + 512  # package name and secrets
        if total > USER_DATA_LIMIT:
            raise DeployError(
                f"the config makes the instance's user data about {total} bytes, over EC2's "
                f"{USER_DATA_LIMIT}: deploy without --config and copy the file to the instance"
            )
