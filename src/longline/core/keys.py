"""Turn framed messages into keyed events: the dedup key, the resume cursor and the payload.

A message that cannot be keyed (invalid UTF-8, invalid JSON, a missing path or one whose value
is the empty string, too large) becomes a ``Quarantined`` item with its reason, never a silent
drop: an empty key would make every later event with an empty key its duplicate. An SSE event
without an ``id`` is never one of them:

- key ``sse-id`` (the SSE default) is the event's own id when its block had a non-empty ``id``
  field, else the ``hash`` key below (event type and data), so the overlap of a rotation or of
  ``redundancy`` still collapses; the price is that identical id-less events collapse too;
- cursor ``sse-id`` is the last event ID in force (inherited from earlier events, WHATWG); when
  it is empty the event's cursor is None, which leaves the stored checkpoint as it was.

Key and cursor values become strings the same way on every backend: a JSON string as is, a
number or boolean as its JSON text (``1``, ``1.5``, ``true``), an object or array as compact JSON
with sorted keys; ``null`` counts as absent. Note that orjson reads integers beyond 64 bits as
floats, so two such keys differing only past ~17 significant digits would collide.

A key or cursor that is one top-level name (``$.id``, the common case) is read by a msgspec
decoder that validates the whole document but builds only that value (measured: keying
0.18 us per event cheaper, docs/benchmarks.md); a value that is not a string or a 64-bit
integer, and any document it refuses, go to orjson's whole parse, so keys and quarantine
reasons are as described above. One difference: a number too large for a float (``1e400``,
valid JSON) in a field the key does not read is no longer a reason to quarantine.

The ``hash`` key is ``blake2b(data, digest_size=16)`` in hex. For SSE the event type takes part
when it is set and is not the default ``message`` (``blake2b(type + b"\\n" + data)``): two events
of different types with the same data are different events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from hashlib import blake2b
from typing import Any, overload

import msgspec
import orjson

from longline.core.model import Event, Keyed, Message, Oversized, Quarantined

__all__ = ["EventBatch", "JsonPath", "Keyer", "PathNotFound", "parse_json_path"]

_NAME = re.compile(r"[^.\[\]\s'\"]+")
_BRACKET = re.compile(r"""\[(?:'([^']*)'|"([^"]*)"|(\d+))\]""")

# What a key or cursor comes from, decided once at init so the hot path compares small ints.
_NONE, _SSE_ID, _HASH, _PATH = 0, 1, 2, 3


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


_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # orjson reads integers outside as floats
_DECODE_ERRORS = (orjson.JSONDecodeError, msgspec.DecodeError, RecursionError)


class _Reparse(Enum):
    """A getter's answer when the fast decoder's value is not a string or a 64-bit integer:
    the document is then parsed whole, so the value becomes text exactly as before."""

    REPARSE = 0


REPARSE = _Reparse.REPARSE


def _fast_decoder(paths: Sequence[JsonPath]) -> tuple[Callable[[bytes], object], dict[str, str]]:
    """A decoder that reads only the top-level names of one-name ``paths`` (``$.id``), and the
    attribute each name lands in; it validates the whole document but makes no object for
    anything else (msgspec skips unread values). Raises ``ValueError`` for other paths."""
    names: list[str] = []
    for path in paths:
        if len(path.steps) != 1 or not isinstance(path.steps[0], str):
            raise ValueError("not a one-name path")
        names.append(path.steps[0])
    return _decoder_for(tuple(dict.fromkeys(names)))


@cache
def _decoder_for(names: tuple[str, ...]) -> tuple[Callable[[bytes], object], dict[str, str]]:
    """One decoder per set of names, shared by every stream keyed by them: a class and a
    decoder per stream would cost kilobytes per idle stream."""
    attrs = {name: f"f{i}" for i, name in enumerate(names)}
    struct = msgspec.defstruct(
        "KeyFields",
        [(attr, Any, None) for attr in attrs.values()],
        rename={attr: name for name, attr in attrs.items()},
    )
    return msgspec.json.Decoder(struct).decode, attrs


def _attr(path: JsonPath | None, attrs: dict[str | int, str]) -> str | None:
    """The fast decoder's attribute holding ``path``'s value, if it has one."""
    return None if path is None or len(path.steps) != 1 else attrs.get(path.steps[0])


Getter = Callable[[object], "str | _Reparse | None"]


@functools.lru_cache(maxsize=256)
def _getter(path: JsonPath | None, attr: str | None = None) -> Getter:
    """A function returning the path's value as key/cursor text, or None when it is absent.

    Built once per distinct path and shared by every keyer using it (10,000 streams keyed by
    ``$.id`` hold one closure, not 10,000): a one-name path (``$.id``, the common case) is a
    dict lookup, and strings and integers skip the generic conversion (``str(int)`` is the
    JSON text of the 64-bit integers orjson produces).
    """
    if path is None:
        return lambda doc: None
    steps = path.steps
    if len(steps) == 1 and isinstance(steps[0], str):
        name = steps[0]

        def get_name(doc: object) -> str | _Reparse | None:
            if type(doc) is not dict:
                if attr is None:
                    return None
                field: object = getattr(doc, attr, None)  # a fast decoder's record
                if type(field) is str:
                    return field
                if type(field) is int and _INT_MIN <= field <= _INT_MAX:
                    return str(field)
                return None if field is None else REPARSE
            value: object = doc.get(name)
            if type(value) is str:
                return value
            if type(value) is int:
                return str(value)
            return None if value is None else _to_str(value)

        return get_name

    def get_path(doc: object) -> str | None:
        try:
            value = path.get(doc)
        except PathNotFound:
            return None
        return None if value is None else _to_str(value)

    return get_path


class EventBatch(Sequence[Event]):
    """Keyed events held column by column: what the writer buffers and hands to the store.

    Indexing or iterating yields ``Event`` objects, so any store accepts a batch; stores that
    know the columns (SQLite) bind them directly and no per-event object is ever made, which
    is most of the cost of an event on the hot path (see docs/benchmarks.md).
    """

    __slots__ = ("cursors", "keys", "payloads", "received", "types")

    def __init__(
        self,
        keys: list[str] | None = None,
        payloads: list[str] | None = None,
        cursors: list[str | None] | None = None,
        received: list[float] | None = None,
        types: list[str | None] | None = None,
    ) -> None:
        self.keys: list[str] = [] if keys is None else keys
        self.payloads: list[str] = [] if payloads is None else payloads
        self.cursors: list[str | None] = [] if cursors is None else cursors
        self.received: list[float] = [] if received is None else received
        self.types: list[str | None] = [] if types is None else types

    @classmethod
    def of(cls, events: Iterable[Event]) -> EventBatch:
        """A batch holding ``events``."""
        batch = cls()
        for ev in events:
            batch.append(ev)
        return batch

    def append(self, ev: Event) -> None:
        """Add one event at the end."""
        self.keys.append(ev.key)
        self.payloads.append(ev.payload)
        self.cursors.append(ev.cursor)
        self.received.append(ev.received_at)
        self.types.append(ev.event)

    def take(self, n: int) -> EventBatch:
        """Remove the first ``n`` events and return them as a new batch.

        In place: the rest is not copied (the writer takes a batch off a buffer that may hold
        several more).
        """
        head = self[:n]
        for column in (self.keys, self.payloads, self.cursors, self.received, self.types):
            del column[:n]
        return head

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> EventBatch: ...

    def __getitem__(self, index: int | slice) -> Event | EventBatch:
        if isinstance(index, slice):
            return EventBatch(
                self.keys[index],
                self.payloads[index],
                self.cursors[index],
                self.received[index],
                self.types[index],
            )
        return Event(
            self.keys[index],
            self.payloads[index],
            self.cursors[index],
            self.received[index],
            self.types[index],
        )

    def __iter__(self) -> Iterator[Event]:
        return map(Event, self.keys, self.payloads, self.cursors, self.received, self.types)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EventBatch({list(self)!r})"


_parsed_path = functools.lru_cache(maxsize=256)(parse_json_path)  # immutable: shared


def _source(spec: str | None, role: str) -> tuple[int, JsonPath | None]:
    if spec is None:
        return _NONE, None
    if spec == "sse-id":
        return _SSE_ID, None
    if spec == "hash" and role == "key":
        return _HASH, None
    if spec.startswith("$"):
        return _PATH, _parsed_path(spec)
    choices = "'sse-id', 'hash' or a JSON path" if role == "key" else "'sse-id' or a JSON path"
    raise ValueError(f"invalid {role} {spec!r}: expected {choices} starting with '$'")


class Keyer:
    """Make events from messages for one stream: ``make`` per message, ``oversized`` per refusal.

    ``key`` is ``"sse-id"`` (the event's own id, else its hash), ``"hash"`` or a JSON path;
    ``cursor`` is ``"sse-id"`` (the last event ID), a JSON path or ``None``; ``transport`` is
    the stream's transport name, and ``sse`` says whether its messages carry SSE fields (by
    default: the transport is ``"sse"``).
    """

    __slots__ = (
        "_cursor",
        "_cursor_get",
        "_cursor_path",
        "_decode",
        "_json",
        "_key",
        "_key_get",
        "_key_path",
        "_same",
        "_sse",
    )

    def __init__(
        self, key: str, cursor: str | None, transport: str, *, sse: bool | None = None
    ) -> None:
        self._key, self._key_path = _source(key, "key")
        self._cursor, self._cursor_path = _source(cursor, "cursor")
        self._sse = transport == "sse" if sse is None else sse
        if not self._sse and _SSE_ID in (self._key, self._cursor):
            raise ValueError(f"'sse-id' needs transport 'sse', not {transport!r}")
        self._json = _PATH in (self._key, self._cursor)
        paths = [p for p in (self._key_path, self._cursor_path) if p is not None]
        self._decode: Callable[[bytes], object] = orjson.loads
        attrs: dict[str | int, str] = {}
        if paths:
            try:
                self._decode, fields = _fast_decoder(paths)
                attrs.update(fields)
            except ValueError:  # a path of more than one step: documents are parsed whole
                pass
        self._key_get = _getter(self._key_path, _attr(self._key_path, attrs))
        self._cursor_get = _getter(self._cursor_path, _attr(self._cursor_path, attrs))
        self._same = self._key == _PATH and self._cursor_path == self._key_path

    def make(self, msg: Message, received_at: float) -> Event | Quarantined:
        """Key one message, or say why it cannot be stored as an event."""
        batch = EventBatch()
        bad: list[Quarantined] = []
        self.key_into((msg,), received_at, batch, bad, 0)
        return bad[0] if bad else batch[0]

    def key_into(
        self,
        items: Iterable[Message | Keyed | Quarantined | Oversized | bytes],
        received_at: float,
        out: EventBatch,
        bad: list[Quarantined],
        limit: int,
    ) -> int:
        """Key ``items`` into ``out``, or into ``bad`` with the reason; return events added.

        The hot path: one call per chunk read, not per message. ``bytes`` items are message
        bodies without SSE fields (ws, lines); ``limit`` is the ``max_message_size`` that
        ``Oversized`` items exceeded. The loop keeps everything in locals on purpose.
        """
        keys, payloads, cursors = out.keys, out.payloads, out.cursors
        received, types = out.received, out.types
        before = len(keys)
        key_kind, cursor_kind, same = self._key, self._cursor, self._same
        key_get, cursor_get = self._key_get, self._cursor_get
        use_json, sse, loads = self._json, self._sse, self._decode
        event: str | None = None
        ident: str | None = None
        doc: object = None
        own = False
        for item in items:
            if type(item) is bytes:
                data, event, ident, own = item, None, None, False
            elif type(item) is Message:
                data, event, ident, own = item.data, item.event, item.id, item.own_id
            elif type(item) is Keyed:  # keyed by a provider session
                keys.append(item.key)
                payloads.append(item.payload)
                cursors.append(item.cursor)
                received.append(received_at)
                types.append(item.event)
                continue
            elif type(item) is Quarantined:  # refused by a provider session
                bad.append(item)
                continue
            else:
                assert isinstance(item, Oversized)
                bad.append(self.oversized(item, received_at, limit))
                continue
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
                bad.append(Quarantined(reason, data, received_at))
                continue
            if use_json:
                try:
                    doc = loads(data)
                except _DECODE_ERRORS:  # orjson's verdict, its reason, non-object documents
                    try:
                        doc = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        bad.append(Quarantined(f"invalid JSON: {exc}", data, received_at))
                        continue
            if key_kind == _PATH:
                found = key_get(doc)
                if found is REPARSE:  # not a string or a 64-bit integer: orjson decides
                    try:
                        doc = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        bad.append(Quarantined(f"invalid JSON: {exc}", data, received_at))
                        continue
                    found = key_get(doc)
                if found is None or found is REPARSE or found == "":
                    # absent, or "": an empty key would swallow every later empty one
                    what = "is an empty string" if found == "" else "not found"
                    reason = f"key path {self._key_path} {what}"
                    bad.append(Quarantined(reason, data, received_at))
                    continue
                key = found
            elif own and key_kind == _SSE_ID and ident is not None:
                key = ident
            else:  # "hash", or "sse-id" for an event without an id of its own
                if sse and event is not None and event != "message":
                    digest = blake2b(event.encode() + b"\n", digest_size=16)
                    digest.update(data)
                    key = digest.hexdigest()
                else:
                    key = blake2b(data, digest_size=16).hexdigest()
            cursor: str | None = None
            if same:
                cursor = key
            elif cursor_kind == _PATH:
                found = cursor_get(doc)
                if found is REPARSE:  # not a string or a 64-bit integer: orjson decides
                    try:
                        doc = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        bad.append(Quarantined(f"invalid JSON: {exc}", data, received_at))
                        continue
                    found = cursor_get(doc)
                if found is None or found is REPARSE or found == "":
                    # an empty cursor could not be sent back to resume
                    what = "is an empty string" if found == "" else "not found"
                    reason = f"cursor path {self._cursor_path} {what}"
                    bad.append(Quarantined(reason, data, received_at))
                    continue
                cursor = found
            elif cursor_kind == _SSE_ID:
                cursor = ident  # None (empty last event ID): the checkpoint stays
            keys.append(key)
            payloads.append(text)
            cursors.append(cursor)
            received.append(received_at)
            types.append(event if sse else None)
        return len(keys) - before

    def oversized(self, o: Oversized, received_at: float, limit: int) -> Quarantined:
        """The quarantine entry for a message refused by ``max_message_size``."""
        return Quarantined(
            f"message of {o.size} bytes exceeds max_message_size {limit}", o.head, received_at
        )
