"""Amazon States Language data handling for the local interpreter: paths, intrinsics, choices.

Only what longline's definitions use, each rule as the ASL specification states it, so the
interpreter in :mod:`longline.aws.stepfunctions` stays about control flow and history.
"""

from __future__ import annotations

import copy
import hashlib
import json
import operator
import re
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["ASLError", "TaskFailed", "choose", "evaluate", "matches", "read_path", "write_path"]


class ASLError(Exception):
    """The definition uses something invalid or unsupported (AWS would refuse to create it)."""


class TaskFailed(Exception):
    """An ASL error (``error`` such as ``Lambda.ServiceException`` or ``States.Runtime``).

    Callbacks raise it to simulate a failed AWS call; Retry and Catch see ``error``.
    """

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")


def _segments(path: str) -> list[str | int]:
    rest = path[2:] if path.startswith("$$") else path[1:]
    out: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _SEGMENT.match(rest, pos)
        if m is None:
            raise ASLError(f"unsupported path {path!r}")
        name, index, quoted = m.groups()
        out.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = m.end()
    return out


def read_path(path: str | None, data: Any, ctx: dict[str, Any]) -> Any:
    """The value at ``path`` (``$...`` in ``data``, ``$$...`` in the context); null gives {}."""
    if path is None:
        return {}
    if not path.startswith("$"):
        raise ASLError(f"a path starts with $: {path!r}")
    node: Any = ctx if path.startswith("$$") else data
    for seg in _segments(path):
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            raise TaskFailed("States.Runtime", f"path {path} not found in the input") from None
    return node


def write_path(path: str | None, data: Any, value: Any) -> Any:
    """``data`` with ``value`` placed at a ResultPath (null keeps ``data``, ``$`` replaces it)."""
    if path is None:
        return data
    if path == "$":
        return value
    segments = _segments(path)
    if path.startswith("$$") or not all(isinstance(s, str) for s in segments):
        raise ASLError(f"unsupported ResultPath {path!r}")
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    for seg in segments[:-1]:
        child = node.get(seg)
        node[seg] = child if isinstance(child, dict) else {}
        node = node[seg]
    node[segments[-1]] = value
    return out


def evaluate(template: Any, data: Any, ctx: dict[str, Any]) -> Any:
    """Parameters/ResultSelector: ``key.$`` values are paths or intrinsic functions."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _reference(value, data, ctx)
            else:
                out[key] = evaluate(value, data, ctx)
        return out
    if isinstance(template, list):
        return [evaluate(v, data, ctx) for v in template]
    return template


def _reference(value: object, data: Any, ctx: dict[str, Any]) -> Any:
    if not isinstance(value, str):
        raise ASLError(f"a .$ field holds a path or an intrinsic function, not {value!r}")
    if value.startswith("States."):
        parser = _Intrinsic(value, data, ctx)
        result = parser.call()
        parser.end()
        return result
    return read_path(value, data, ctx)


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
_HASHES["SHA-512"] = "sha512"
_LITERAL = re.compile(r"-?\d+(\.\d+)?|true|false|null")
_NAME = re.compile(r"States\.[A-Za-z]+")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _format(template: str, *args: Any) -> str:
    parts = template.split("{}")
    if len(parts) - 1 != len(args):
        raise TaskFailed("States.IntrinsicFailure", "States.Format: argument count mismatch")
    return parts[0] + "".join(_text(a) + p for a, p in zip(args, parts[1:], strict=True))


def _math_add(a: Any, b: Any) -> int:
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b)):
        raise TaskFailed("States.IntrinsicFailure", "States.MathAdd takes integers")
    return int(a) + int(b)


def _hash(value: Any, algorithm: str) -> str:
    if algorithm not in _HASHES:
        raise TaskFailed("States.IntrinsicFailure", f"States.Hash: unknown {algorithm}")
    return hashlib.new(_HASHES[algorithm], _text(value).encode()).hexdigest()


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "States.MathAdd": _math_add,
    "States.Format": _format,
    "States.Hash": _hash,
    "States.UUID": lambda: str(uuid.uuid4()),
    "States.Array": lambda *args: list(args),
    "States.JsonToString": _text,
    "States.StringToJson": json.loads,
}


class _Intrinsic:
    """A recursive-descent reader of ``States.F(arg, ...)``: literals, paths, nested calls."""

    def __init__(self, text: str, data: Any, ctx: dict[str, Any]) -> None:
        self.text, self.pos, self.data, self.ctx = text, 0, data, ctx

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def _expect(self, char: str) -> None:
        self._skip()
        if not self.text.startswith(char, self.pos):
            raise ASLError(f"expected {char!r} at {self.pos} in {self.text!r}")
        self.pos += 1

    def end(self) -> None:
        self._skip()
        if self.pos != len(self.text):
            raise ASLError(f"unexpected text after the call in {self.text!r}")

    def call(self) -> Any:
        self._skip()
        m = _NAME.match(self.text, self.pos)
        if m is None or m.group(0) not in _FUNCTIONS:
            raise ASLError(f"unsupported intrinsic function in {self.text!r}")
        self.pos = m.end()
        self._expect("(")
        args: list[Any] = []
        self._skip()
        if self.text.startswith(")", self.pos):
            self.pos += 1
        else:
            while True:
                args.append(self._arg())
                self._skip()
                if self.text.startswith(")", self.pos):
                    self.pos += 1
                    break
                self._expect(",")
        try:
            return _FUNCTIONS[m.group(0)](*args)
        except TypeError as e:
            raise TaskFailed("States.IntrinsicFailure", f"{m.group(0)}: {e}") from None

    def _arg(self) -> Any:
        self._skip()
        rest = self.text[self.pos :]
        if rest.startswith("'"):
            return self._string()
        if rest.startswith("States."):
            return self.call()
        if rest.startswith("$"):
            end = self.pos
            while end < len(self.text) and self.text[end] not in ",)":
                end += 1
            path, self.pos = self.text[self.pos : end].strip(), end
            return read_path(path, self.data, self.ctx)
        m = _LITERAL.match(self.text, self.pos)
        if m is None:
            raise ASLError(f"bad argument at {self.pos} in {self.text!r}")
        self.pos = m.end()
        return json.loads(m.group(0))

    def _string(self) -> str:
        out: list[str] = []
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == "'":
                return "".join(out)
            else:
                out.append(char)
        raise ASLError(f"unterminated string in {self.text!r}")


def matches(error_equals: list[str], error: str) -> bool:
    """Whether a Retry/Catch ``ErrorEquals`` covers ``error`` (States.Runtime is never caught)."""
    if error == "States.Runtime":
        return False
    if "States.ALL" in error_equals or error in error_equals:
        return True
    return "States.TaskFailed" in error_equals and error != "States.Timeout"


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_KINDS: dict[str, Callable[[Any], bool]] = {
    "Numeric": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
}
_RULE = re.compile(r"(Numeric|String|Boolean)(Equals|LessThan|GreaterThan|LessThanEquals|"
                   r"GreaterThanEquals)(Path)?")  # fmt: skip
_MISSING = object()


def _rule(rule: dict[str, Any], data: Any, ctx: dict[str, Any]) -> bool:
    if "And" in rule:
        return all(_rule(r, data, ctx) for r in rule["And"])
    if "Or" in rule:
        return any(_rule(r, data, ctx) for r in rule["Or"])
    if "Not" in rule:
        return not _rule(rule["Not"], data, ctx)
    try:
        value = read_path(rule["Variable"], data, ctx)
    except TaskFailed:
        value = _MISSING
    for key, expected in rule.items():
        if key == "IsPresent":
            return bool((value is not _MISSING) == expected)
        m = _RULE.fullmatch(key)
        if m is None:
            continue
        if value is _MISSING:
            raise TaskFailed("States.Runtime", f"choice variable {rule['Variable']} not found")
        kind, comparison, by_path = m.groups()
        other = read_path(expected, data, ctx) if by_path else expected
        if comparison != "Equals" and kind == "Boolean":
            raise ASLError(f"unsupported comparison {key}")
        check = _KINDS[kind]
        return check(value) and check(other) and bool(_COMPARE[comparison](value, other))
    raise ASLError(f"unsupported choice rule {sorted(rule)}")


def choose(state: dict[str, Any], data: Any, ctx: dict[str, Any]) -> str:
    """The Next of the first matching rule of a Choice state, else its Default."""
    for rule in state["Choices"]:
        if _rule(rule, data, ctx):
            return str(rule["Next"])
    if "Default" not in state:
        raise TaskFailed("States.NoChoiceMatched", f"no choice matched in {state}")
    return str(state["Default"])
