"""Turn framed messages into keyed events: the dedup key, the resume cursor and the payload.

A message that cannot be keyed (invalid UTF-8, invalid JSON, a missing path, no SSE id, too
large) becomes a ``Quarantined`` item with its reason, never a silent drop.

Key and cursor values become strings the same way on every backend: a JSON string as is, a
number or boolean as its JSON text (``1``, ``1.5``, ``true``), an object or array as compact JSON
with sorted keys; ``null`` counts as absent. Note that orjson reads integers beyond 64 bits as
floats, so two such keys differing only past ~17 significant digits would collide.

The ``hash`` key is ``blake2b(data, digest_size=16)`` in hex. For SSE the event type takes part
when it is set and is not the default ``message`` (``blake2b(type + b"\\n" + data)``): two events
of different types with the same data are different events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import blake2b

import orjson

from longline.core.model import Event, Message, Oversized, Quarantined

__all__ = ["JsonPath", "Keyer", "PathNotFound", "parse_json_path"]

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_BRACKET = re.compile(r"""\[(?:'([^']*)'|"([^"]*)"|(\d+))\]""")

# What a key or cursor comes from, decided once at init so the hot path compares small ints.
_NONE, _SSE_ID, _HASH, _PATH = 0, 1, 2, 3
_TRANSPORTS = ("sse", "ws", "lines")


class PathNotFound(KeyError):
    """The JSON path leads nowhere in this document."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "path not found"


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed JSON path: the steps from the document root, names (str) or indexes (int)."""

    expr: str
    steps: tuple[str | int, ...]

    def get(self, obj: object) -> object:
        """Follow the path in a parsed JSON document; raise ``PathNotFound`` when it is absent."""
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(obj, dict) or step not in obj:
                    raise PathNotFound(f"{self.expr}: no key {step!r}")
                obj = obj[step]
            else:
                if not isinstance(obj, list) or step >= len(obj):
                    raise PathNotFound(f"{self.expr}: no index {step}")
                obj = obj[step]
        return obj

    def __str__(self) -> str:
        return self.expr


def parse_json_path(expr: str) -> JsonPath:
    """Parse ``$``, ``.name``, ``['name']``, ``["name"]`` and ``[index]`` steps.

    Only this small subset: a key or cursor must name one value, so wildcards, slices, filters
    and recursive descent are refused with a ``ValueError`` that says where.
    """
    if not expr.startswith("$"):
        raise ValueError(f"invalid JSON path {expr!r}: it must start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(expr):
        char = expr[pos]
        if char == ".":
            match = _NAME.match(expr, pos + 1)
            if match is None:
                raise ValueError(
                    f"invalid JSON path {expr!r}: expected a name after '.' at position {pos}"
                )
            steps.append(match.group())
        elif char == "[":
            match = _BRACKET.match(expr, pos)
            if match is None:
                raise ValueError(
                    f"invalid JSON path {expr!r}: expected ['name'], [\"name\"] or a "
                    f"non-negative [index] at position {pos}"
                )
            single, double, index = match.groups()
            steps.append(
                int(index) if index is not None else single if single is not None else double
            )
        else:
            raise ValueError(
                f"invalid JSON path {expr!r}: unexpected {char!r} at position {pos} "
                "(expected '.name' or '[...]')"
            )
        pos = match.end()
    return JsonPath(expr, tuple(steps))


def _to_str(value: object) -> str:
    """A key or cursor value as text (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return orjson.dumps(value).decode()


def _source(spec: str | None, role: str) -> tuple[int, JsonPath | None]:
    if spec is None:
        return _NONE, None
    if spec == "sse-id":
        return _SSE_ID, None
    if spec == "hash" and role == "key":
        return _HASH, None
    if spec.startswith("$"):
        return _PATH, parse_json_path(spec)
    choices = "'sse-id', 'hash' or a JSON path" if role == "key" else "'sse-id' or a JSON path"
    raise ValueError(f"invalid {role} {spec!r}: expected {choices} starting with '$'")


class Keyer:
    """Make events from messages for one stream: ``make`` per message, ``oversized`` per refusal.

    ``key`` is ``"sse-id"``, ``"hash"`` or a JSON path; ``cursor`` is ``"sse-id"``, a JSON path
    or ``None``; ``transport`` is ``"sse"``, ``"ws"`` or ``"lines"``.
    """

    __slots__ = ("_cursor", "_cursor_path", "_json", "_key", "_key_path", "_sse")

    def __init__(self, key: str, cursor: str | None, transport: str) -> None:
        if transport not in _TRANSPORTS:
            raise ValueError(f"invalid transport {transport!r}: expected one of {_TRANSPORTS}")
        self._key, self._key_path = _source(key, "key")
        self._cursor, self._cursor_path = _source(cursor, "cursor")
        self._sse = transport == "sse"
        if not self._sse and _SSE_ID in (self._key, self._cursor):
            raise ValueError(f"'sse-id' needs transport 'sse', not {transport!r}")
        self._json = _PATH in (self._key, self._cursor)

    def make(self, msg: Message, received_at: float) -> Event | Quarantined:
        """Key one message, or say why it cannot be stored as an event."""
        data = msg.data
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            return Quarantined(
                f"invalid UTF-8 at byte {exc.start}: {exc.reason}", data, received_at
            )
        doc: object = None
        if self._json:
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                return Quarantined(f"invalid JSON: {exc}", data, received_at)

        kind = self._key
        if kind == _PATH:
            key = self._lookup(self._key_path, doc)
            if key is None:
                return Quarantined(f"key path {self._key_path} not found", data, received_at)
        elif kind == _HASH:
            if self._sse and msg.event is not None and msg.event != "message":
                digest = blake2b(msg.event.encode() + b"\n", digest_size=16)
                digest.update(data)
                key = digest.hexdigest()
            else:
                key = blake2b(data, digest_size=16).hexdigest()
        else:
            key = msg.id
            if key is None:
                return Quarantined("no SSE id", data, received_at)

        kind = self._cursor
        cursor: str | None = None
        if kind == _PATH:
            cursor = self._lookup(self._cursor_path, doc)
            if cursor is None:
                return Quarantined(f"cursor path {self._cursor_path} not found", data, received_at)
        elif kind == _SSE_ID:
            cursor = msg.id
            if cursor is None:
                return Quarantined("no SSE id for the cursor", data, received_at)
        return Event(key, text, cursor, received_at, msg.event if self._sse else None)

    @staticmethod
    def _lookup(path: JsonPath | None, doc: object) -> str | None:
        assert path is not None
        try:
            value = path.get(doc)
        except PathNotFound:
            return None
        return None if value is None else _to_str(value)

    def oversized(self, o: Oversized, received_at: float, limit: int) -> Quarantined:
        """The quarantine entry for a message refused by ``max_message_size``."""
        return Quarantined(
            f"message of {o.size} bytes exceeds max_message_size {limit}", o.head, received_at
        )
