"""Keyer.key_into, the batched hot path: for any mix of items and every key/cursor kind it must
give exactly what ``make`` / ``oversized`` give one item at a time, and what an independent
literal reference of the keying rules gives."""

from __future__ import annotations

from hashlib import blake2b

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longline.core.keys import EventBatch, Keyer, PathNotFound, parse_json_path
from longline.core.model import Event, Message, Oversized, Quarantined

Item = Message | Oversized | bytes

KEYS = ["sse-id", "hash", "$.id", "$.a.b", "$.arr[1]", "$['x y']", "$"]
CURSORS = [None, "sse-id", "$.id", "$.a.b", "$.arr[1]", "$['x y']"]
TRANSPORTS = ["sse", "ws", "lines"]
SPECS = [
    (key, cursor, transport)
    for key in KEYS
    for cursor in CURSORS
    for transport in TRANSPORTS
    if transport == "sse" or "sse-id" not in (key, cursor)
]


# --- an independent reference: the keying rules written out literally ------------------------


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return orjson.dumps(value).decode()


def _lookup(spec: str, doc: object) -> str | None:
    try:
        value = parse_json_path(spec).get(doc)
    except PathNotFound:
        return None
    return None if value is None else _text(value)


def reference(
    item: Item, key: str, cursor: str | None, transport: str, now: float, limit: int
) -> Event | Quarantined:
    """One item keyed by the rules of core/keys.py's docstring (the pre-batch ``make``)."""
    if isinstance(item, Oversized):
        return Quarantined(
            f"message of {item.size} bytes exceeds max_message_size {limit}", item.head, now
        )
    msg = Message(item) if isinstance(item, bytes) else item
    sse = transport == "sse"
    try:
        text = msg.data.decode()
    except UnicodeDecodeError as exc:
        return Quarantined(f"invalid UTF-8 at byte {exc.start}: {exc.reason}", msg.data, now)
    doc: object = None
    if key.startswith("$") or (cursor or "").startswith("$"):
        try:
            doc = orjson.loads(msg.data)
        except orjson.JSONDecodeError as exc:
            return Quarantined(f"invalid JSON: {exc}", msg.data, now)
    if key.startswith("$"):
        k = _lookup(key, doc)
        if k is None or k == "":
            what = "not found" if k is None else "is an empty string"
            return Quarantined(f"key path {key} {what}", msg.data, now)
    elif key == "sse-id" and msg.own_id and msg.id is not None:
        k = msg.id  # the event's own id
    elif sse and msg.event is not None and msg.event != "message":  # hash, or sse-id without
        k = blake2b(msg.event.encode() + b"\n" + msg.data, digest_size=16).hexdigest()
    else:
        k = blake2b(msg.data, digest_size=16).hexdigest()
    c: str | None = None
    if cursor is not None and cursor.startswith("$"):
        c = _lookup(cursor, doc)
        if c is None or c == "":
            what = "not found" if c is None else "is an empty string"
            return Quarantined(f"cursor path {cursor} {what}", msg.data, now)
    elif cursor == "sse-id":
        c = msg.id  # the last event ID in force; None when empty (the checkpoint stays)
    return Event(k, text, c, now, msg.event if sse else None)


# --- strategies -----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
partial_documents = st.fixed_dictionaries(
    {},
    optional={
        "id": values,
        "a": values | st.fixed_dictionaries({"b": values}),
        "arr": st.lists(values, max_size=3),
        "x y": values,
        "z": values,
    },
).map(orjson.dumps)
full_documents = st.fixed_dictionaries(
    {
        "id": scalars | values,
        "a": st.fixed_dictionaries({"b": scalars | values}),
        "arr": st.lists(values, min_size=2, max_size=3),
        "x y": values,
    }
).map(orjson.dumps)
raw = st.sampled_from(
    [b"", b"\xff", b'{"id": 1, "a": "\xc3"}', b'{"id":', b"[1, 2]", b'"s"', b"7", b"null",
     b"1e400", b"plain text", b'{"id": null}', b'{"a": {"b": [1]}, "arr": [0, {"k": 1}]}']
)  # fmt: skip
bodies = st.one_of(full_documents, full_documents, partial_documents, raw, st.binary(max_size=8))
sse_ids = st.none() | st.sampled_from(["", "1", "abc", "é"])
event_types = st.none() | st.sampled_from(["message", "tick", ""])
messages = st.builds(Message, bodies, event_types, sse_ids, st.booleans())
oversized = st.builds(Oversized, st.integers(0, 10**6), st.binary(max_size=6))
items = st.lists(messages | bodies | oversized, max_size=12)


def one_by_one(
    keyer: Keyer, seq: list[Item], now: float, limit: int
) -> tuple[list[Event], list[Quarantined]]:
    events: list[Event] = []
    bad: list[Quarantined] = []
    for item in seq:
        if isinstance(item, Oversized):
            bad.append(keyer.oversized(item, now, limit))
            continue
        out = keyer.make(Message(item) if isinstance(item, bytes) else item, now)
        (events if isinstance(out, Event) else bad).append(out)  # type: ignore[arg-type]
    return events, bad


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SPECS), items, st.floats(0, 2e9), st.integers(0, 10**6))
def test_key_into_matches_make_one_by_one(
    spec: tuple[str, str | None, str], seq: list[Item], now: float, limit: int
) -> None:
    key, cursor, transport = spec
    keyer = Keyer(key, cursor, transport)
    out = EventBatch()
    bad: list[Quarantined] = []
    added = keyer.key_into(seq, now, out, bad, limit)
    events, quarantined = one_by_one(keyer, seq, now, limit)
    assert out == events
    assert list(out) == events
    assert bad == quarantined
    assert added == len(events)
    assert len(events) + len(quarantined) == len(seq)
    expected = [reference(item, key, cursor, transport, now, limit) for item in seq]
    assert events == [x for x in expected if isinstance(x, Event)]
    assert quarantined == [x for x in expected if isinstance(x, Quarantined)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SPECS), items, items, st.integers(0, 100))
def test_key_into_appends_and_counts_only_what_it_added(
    spec: tuple[str, str | None, str], first: list[Item], second: list[Item], limit: int
) -> None:
    keyer = Keyer(*spec)
    out = EventBatch()
    bad: list[Quarantined] = []
    n1 = keyer.key_into(first, 1.0, out, bad, limit)
    n2 = keyer.key_into(iter(second), 2.0, out, bad, limit)  # any iterable
    e1, q1 = one_by_one(keyer, first, 1.0, limit)
    e2, q2 = one_by_one(keyer, second, 2.0, limit)
    assert (n1, n2) == (len(e1), len(e2))
    assert out == e1 + e2
    assert bad == q1 + q2


@pytest.mark.parametrize(("key", "cursor", "transport"), SPECS)
def test_every_spec_on_a_fixed_mix(key: str, cursor: str | None, transport: str) -> None:
    keyer = Keyer(key, cursor, transport)
    seq: list[Item] = [
        Message(b'{"id": 1, "a": {"b": "x"}, "arr": [0, 2], "x y": true}', "tick", "9", True),
        b'{"id": "s", "a": {"b": 1.5}, "arr": [1, [3]], "x y": {"q": 1, "p": 2}}',
        Oversized(5000, b"head"),
        Message(b"\xff\xfe", None, "1", True),
        b"not json",
        Message(b'{"id": 2}', "message", None),
        Message(b'{"id": 3, "a": {"b": 4}, "arr": [5, 6], "x y": "v"}', None, "7"),
        Message(b'{"id": 4}', "tick", None, True),
    ]
    out = EventBatch()
    bad: list[Quarantined] = []
    added = keyer.key_into(seq, 5.0, out, bad, 4096)
    expected = [reference(item, key, cursor, transport, 5.0, 4096) for item in seq]
    assert out == [x for x in expected if isinstance(x, Event)]
    assert bad == [x for x in expected if isinstance(x, Quarantined)]
    assert added == len(out)
    assert Quarantined("message of 5000 bytes exceeds max_message_size 4096", b"head", 5.0) in bad


def test_exact_values_for_a_path_key_with_sse() -> None:
    keyer = Keyer("$.id", "$.a.b", "sse")
    out = EventBatch()
    bad: list[Quarantined] = []
    seq: list[Item] = [
        Message(b'{"id": 1, "a": {"b": [2, {"y": 1, "x": 0}]}}', "tick", "5"),
        b'{"id": {"b": 1, "a": 2}, "a": {"b": true}}',
        Message(b'{"id": 3}', None, None),
        Oversized(10, b"0123"),
        Message(b'{"id": null, "a": {"b": 1}}'),
    ]
    assert keyer.key_into(seq, 9.0, out, bad, 8) == 2
    assert out == [
        Event(
            "1", '{"id": 1, "a": {"b": [2, {"y": 1, "x": 0}]}}', '[2,{"x":0,"y":1}]', 9.0, "tick"
        ),
        Event('{"a":2,"b":1}', '{"id": {"b": 1, "a": 2}, "a": {"b": true}}', "true", 9.0, None),
    ]
    assert bad == [
        Quarantined("cursor path $.a.b not found", b'{"id": 3}', 9.0),
        Quarantined("message of 10 bytes exceeds max_message_size 8", b"0123", 9.0),
        Quarantined("key path $.id not found", b'{"id": null, "a": {"b": 1}}', 9.0),
    ]
    assert out.types == ["tick", None]


def test_hash_of_bare_bytes_and_messages_agree_outside_sse() -> None:
    keyer = Keyer("hash", None, "ws")
    out = EventBatch()
    bad: list[Quarantined] = []
    digest = blake2b(b"abc", digest_size=16).hexdigest()
    keyer.key_into([b"abc", Message(b"abc", "tick", "1")], 1.0, out, bad, 0)
    assert out == [Event(digest, "abc", None, 1.0), Event(digest, "abc", None, 1.0)]
    assert bad == []


def test_sse_hash_includes_a_non_default_type() -> None:
    keyer = Keyer("hash", "sse-id", "sse")
    out = EventBatch()
    bad: list[Quarantined] = []
    keyer.key_into(
        [Message(b"d", "message", "1"), Message(b"d", "tick", "2"), Message(b"d", None, "3")],
        1.0,
        out,
        bad,
        0,
    )
    plain = blake2b(b"d", digest_size=16).hexdigest()
    typed = blake2b(b"tick\nd", digest_size=16).hexdigest()
    assert out.keys == [plain, typed, plain]
    assert out.cursors == ["1", "2", "3"]
    assert out.types == ["message", "tick", None]


def test_empty_items() -> None:
    out = EventBatch()
    bad: list[Quarantined] = []
    assert Keyer("$.id", None, "lines").key_into([], 1.0, out, bad, 0) == 0
    assert out == [] and bad == []
