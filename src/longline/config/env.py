"""``${VAR}`` interpolation and the collection of every value that must never be shown.

``${VAR:-default}`` takes ``default`` when VAR is unset or empty, as a shell does.

Interpolation is limited to the fields that may carry credentials (store, stream url, headers,
subscribe messages, transport options, every string of a processor entry), and each substituted
value is recorded as a secret. Credential headers and URL passwords are secrets too, written
inline or not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from longline.core.fields import SENSITIVE_HEADERS, header_secrets, url_secrets
from longline.core.secrets import redact

__all__ = [
    "SENSITIVE_HEADERS",
    "UNSET_PLACEHOLDER",
    "Interpolator",
    "header_secrets",
    "redact_tree",
    "url_secrets",
]

# $${ (a literal ${), ${NAME}, ${NAME:-default} (default: no "}"), or a malformed ${.
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}|\$\{")


def redact_tree(node: Any, secrets: frozenset[str]) -> Any:
    """``node`` (a JSON-ready dump) with every secret in every string replaced by ``***``."""
    if isinstance(node, str):
        return redact(node, secrets)
    if isinstance(node, dict):
        return {k: redact_tree(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_tree(v, secrets) for v in node]
    return node


UNSET_PLACEHOLDER = "unset"


class Interpolator:
    """Replaces ``${VAR}`` from ``env`` in the fields that may carry credentials."""

    def __init__(self, env: Mapping[str, str], *, read_only: bool = False) -> None:
        self.env = env
        # Commands that only read the store need the store's variables, not the streams' nor
        # the processors' credentials: unset ones there become UNSET_PLACEHOLDER.
        self.read_only = read_only
        self.skipped: dict[str, str] = {}  # path -> the unset variable read_only let through
        self.secrets: set[str] = set()
        self.errors: list[str] = []
        self.paths: set[str] = set()  # fields with an interpolation error

    def text(self, value: object, path: str) -> object:
        if not isinstance(value, str):
            return value

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name = m.group(1)
            if name is None:
                self.paths.add(path)
                self.errors.append(
                    f"{path}: malformed ${{...}}: write ${{NAME}} or ${{NAME:-default}} "
                    "(NAME: letters, digits, _) or $${ for a literal ${"
                )
                return ""
            fallback = m.group(2)
            if fallback is not None and not self.env.get(name):
                return fallback[2:]  # written in the file, so not collected as a secret
            if name not in self.env:
                if self.read_only and path != "store":
                    self.skipped[path] = name
                    return UNSET_PLACEHOLDER
                self.paths.add(path)
                self.errors.append(f"{path}: environment variable {name} is not set")
                return ""
            self.secrets.add(self.env[name])
            return self.env[name]

        return _ENV_REF.sub(sub, value)

    def config(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if "store" in out:
            out["store"] = self.text(out["store"], "store")
        streams = out.get("streams")
        if isinstance(streams, list):
            out["streams"] = [self.stream(s, f"streams[{i}]") for i, s in enumerate(streams)]
        if isinstance(out.get("http"), Mapping):  # the token may come from the environment
            out["http"] = self.tree(out["http"], "http")
        procs = out.get("processors")
        if isinstance(procs, list):
            out["processors"] = [self.tree(x, f"processors[{i}]") for i, x in enumerate(procs)]
        return out

    def tree(self, node: object, path: str) -> object:
        """Every string in a processor entry may carry a credential (URLs, secrets, headers)."""
        if isinstance(node, Mapping):
            return {k: self.tree(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self.tree(v, f"{path}[{j}]") for j, v in enumerate(node)]
        return self.text(node, path)

    def stream(self, raw: object, path: str) -> object:
        if not isinstance(raw, Mapping):
            return raw
        s = dict(raw)
        if "url" in s:
            s["url"] = self.text(s["url"], f"{path}.url")
        if isinstance(s.get("headers"), Mapping):
            s["headers"] = {k: self.text(v, f"{path}.headers.{k}") for k, v in s["headers"].items()}
            self.secrets |= header_secrets(s["headers"])
        if "session" in s:  # every string of a session may carry a credential
            s["session"] = self.tree(s["session"], f"{path}.session")
        if "options" in s:  # a transport's options may carry credentials, like a processor's
            s["options"] = self.tree(s["options"], f"{path}.options")
        if isinstance(s.get("subscribe"), list):
            s["subscribe"] = [
                self.text(m, f"{path}.subscribe[{j}]") for j, m in enumerate(s["subscribe"])
            ]
        return s
