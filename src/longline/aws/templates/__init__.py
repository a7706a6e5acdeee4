"""CloudFormation / AWS SAM templates for the seed's four ways to run longline on AWS.

Templates are built as Python dicts (shared pieces in :mod:`.common`) and rendered as YAML;
the non-Python parts (EC2 user data, the systemd unit) are package data read with
``importlib.resources``. Intrinsics are written in their long form (``Fn::Sub``), which
CloudFormation, SAM and cfn-lint all read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from longline.aws.templates.common import TABLES, Settings
from longline.aws.templates.ec2 import option4
from longline.aws.templates.ecs import option3
from longline.aws.templates.serverless import option1, option2

__all__ = ["OPTIONS", "TABLES", "Settings", "build", "render"]

OPTIONS: dict[int, Callable[[Settings], dict[str, Any]]] = {
    1: option1,
    2: option2,
    3: option3,
    4: option4,
}


def build(option: int, settings: Settings) -> dict[str, Any]:
    """The template of ``option`` (1-4) as a dict."""
    try:
        return OPTIONS[option](settings)
    except KeyError:
        raise ValueError(f"option must be 1, 2, 3 or 4, not {option}") from None


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (scripts, inline configs), so templates read well."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None
    if "\n" in value:  # a script or a config as a block; a bare newline as "\n"
        style = "|" if value.strip() else '"'

    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(template: dict[str, Any]) -> str:
    """YAML text of a template, keys in the order they were built."""
    return yaml.dump(template, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
