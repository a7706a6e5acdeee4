"""JSON paths and the keyer: every key/cursor source, every quarantine reason."""

from __future__ import annotations

import json
from hashlib import blake2b

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from longline.core.keys import JsonPath, Keyer, PathNotFound, parse_json_path
from longline.core.model import Event, Message, Oversized, Quarantined

T = 1764130000.5


# --- JSON paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "steps"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.data.id", ("data", "id")),
        ("$.time_us", ("time_us",)),
        ("$.meta-data.x1", ("meta-data", "x1")),
        ("$['a b']", ("a b",)),
        ('$["a.b"]', ("a.b",)),
        ("$['']", ("",)),
        ('$["it\'s"]', ("it's",)),
        ("$[0]", (0,)),
        ("$[12][3]", (12, 3)),
        ("$.items[0].id", ("items", 0, "id")),
        ("$.é", ("é",)),
    ],
)
def test_parse_json_path(expr: str, steps: tuple[str | int, ...]) -> None:
    path = parse_json_path(expr)
    assert path == JsonPath(expr, steps)
    assert str(path) == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "must start with '\\$'"),
        ("a.b", "must start with '\\$'"),
        ("$.", "expected a name after '.' at position 1"),
        ("$..a", "expected a name after '.' at position 1"),
        ("$.a.", "expected a name after '.' at position 3"),
        ("$[-1]", "non-negative \\[index\\] at position 1"),
        ("$[*]", "at position 1"),
        ("$[1:2]", "at position 1"),
        ("$['a]", "at position 1"),
        ("$[a]", "at position 1"),
        ("$[0", "at position 1"),
        ("$a", "unexpected 'a' at position 1"),
        ("$.a b", "unexpected ' ' at position 3"),
        ("$.a]", "unexpected '\\]' at position 3"),
    ],
)
def test_invalid_json_path(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_json_path(expr)


DOC = {"a": {"b": [10, {"c": None}], "": 1}, "list": [], "n": 0}


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("$", DOC),
        ("$.a.b[0]", 10),
        ("$.a.b[1]", {"c": None}),
        ("$.a.b[1].c", None),
        ("$.a['']", 1),
        ("$.n", 0),
        ("$.list", []),
    ],
)
def test_path_get(expr: str, value: object) -> None:
    assert parse_json_path(expr).get(DOC) == value


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("$.x", "$.x: no key 'x'"),
        ("$.a.b[2]", "$.a.b[2]: no index 2"),
        ("$.a.b.c", "$.a.b.c: no key 'c'"),
        ("$.n.x", "$.n.x: no key 'x'"),
        ("$.a[0]", "$.a[0]: no index 0"),
        ("$.list[0]", "$.list[0]: no index 0"),
    ],
)
def test_path_not_found(expr: str, message: str) -> None:
    with pytest.raises(PathNotFound) as info:
        parse_json_path(expr).get(DOC)
    assert str(info.value) == message
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, KeyError)


def test_path_on_scalar_and_string_documents() -> None:
    with pytest.raises(PathNotFound):
        parse_json_path("$[0]").get("abc")  # strings are not indexable in JSON paths
    with pytest.raises(PathNotFound):
        parse_json_path("$.a").get(5)


# --- Keyer ------------------------------------------------------------------------------------


def make(key: str, cursor: str | None, transport: str, msg: Message) -> Event | Quarantined:
    return Keyer(key, cursor, transport).make(msg, T)


def test_sse_id_key_and_cursor() -> None:
    msg = Message(b'{"x":1}', "message", "42", own_id=True)
    assert make("sse-id", "sse-id", "sse", msg) == Event("42", '{"x":1}', "42", T, "message")


def test_sse_event_without_an_id_of_its_own_is_keyed_by_its_content() -> None:
    """It carries the last event ID in force as its cursor, but that id names an earlier event:
    keyed by it, the event would be dropped as a duplicate of that one."""
    plain = blake2b(b"x", digest_size=16).hexdigest()
    typed = blake2b(b"tick\nx", digest_size=16).hexdigest()
    inherited = Message(b"x", "message", "41")
    assert make("sse-id", "sse-id", "sse", inherited) == Event(plain, "x", "41", T, "message")
    ticked = Message(b"x", "tick", "41")
    assert make("sse-id", "sse-id", "sse", ticked) == Event(typed, "x", "41", T, "tick")
    # the same key as "hash" gives: a rotation overlap or redundant connection still collapses
    assert make("hash", "sse-id", "sse", ticked) == Event(typed, "x", "41", T, "tick")


def test_sse_event_with_no_last_event_id_is_stored_without_a_cursor() -> None:
    """Nothing is quarantined for lacking an id; a None cursor leaves the checkpoint as is."""
    plain = blake2b(b"x", digest_size=16).hexdigest()
    none = Message(b"x", "message", None)
    assert make("sse-id", "sse-id", "sse", none) == Event(plain, "x", None, T, "message")
    assert make("sse-id", None, "sse", none) == Event(plain, "x", None, T, "message")
    assert make("hash", "sse-id", "sse", none) == Event(plain, "x", None, T, "message")
    # "id:" with an empty value: an id of its own, but empty, so no key to take from it
    reset = Message(b"x", "message", None, own_id=True)
    assert make("sse-id", "sse-id", "sse", reset) == Event(plain, "x", None, T, "message")


def test_sse_event_type_kept_only_for_sse() -> None:
    assert make("hash", None, "sse", Message(b"x", "update")).event == "update"  # type: ignore[union-attr]
    assert make("hash", None, "ws", Message(b"x")).event is None  # type: ignore[union-attr]
    assert make("hash", None, "lines", Message(b"x")).event is None  # type: ignore[union-attr]


def test_hash_key() -> None:
    plain = blake2b(b"hello", digest_size=16).hexdigest()
    assert make("hash", None, "lines", Message(b"hello")) == Event(plain, "hello", None, T, None)
    assert make("hash", None, "ws", Message(b"hello")).key == plain  # type: ignore[union-attr]
    # SSE: the default type does not change the hash, another type does
    assert make("hash", None, "sse", Message(b"hello", "message")).key == plain  # type: ignore[union-attr]
    typed = blake2b(b"put\nhello", digest_size=16).hexdigest()
    assert make("hash", None, "sse", Message(b"hello", "put")).key == typed  # type: ignore[union-attr]
    assert typed != plain
    assert len(plain) == 32


def test_hash_does_not_parse_json() -> None:
    assert make("hash", None, "lines", Message(b"not json")).key == (  # type: ignore[union-attr]
        blake2b(b"not json", digest_size=16).hexdigest()
    )


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (b'{"id": "abc"}', "abc"),
        (b'{"id": 17}', "17"),
        (b'{"id": -3}', "-3"),
        (b'{"id": 1.5}', "1.5"),
        (b'{"id": 1.0}', "1.0"),
        (b'{"id": 18446744073709551615}', "18446744073709551615"),
        (b'{"id": true}', "true"),
        (b'{"id": false}', "false"),
        (b'{"id": {"b": 1, "a": [2, "x"]}}', '{"a":[2,"x"],"b":1}'),
        (b'{"id": [3, {"z": 0, "y": 1}]}', '[3,{"y":1,"z":0}]'),
        (b'{"id": "\\u00e9"}', "é"),
    ],
)
def test_json_path_key_values(doc: bytes, key: str) -> None:
    out = make("$.id", None, "ws", Message(doc))
    assert out == Event(key, doc.decode(), None, T, None)


def test_json_path_key_and_cursor_parse_once() -> None:
    doc = b'{"did": "d1", "time_us": 1725911162329308, "kind": "commit"}'
    out = make("$.did", "$.time_us", "ws", Message(doc))
    assert out == Event("d1", doc.decode(), "1725911162329308", T, None)


def test_path_key_with_sse_id_cursor() -> None:
    doc = b'{"meta": {"id": "m-1"}}'
    out = make("$.meta.id", "sse-id", "sse", Message(doc, "message", '[{"offset": 5}]'))
    assert out == Event("m-1", doc.decode(), '[{"offset": 5}]', T, "message")


@pytest.mark.parametrize(
    ("key", "cursor", "doc", "reason"),
    [
        ("$.id", None, b'{"other": 1}', "key path $.id not found"),
        ("$.id", None, b'{"id": null}', "key path $.id not found"),
        ("$.id", None, b"[1, 2]", "key path $.id not found"),
        ("$[5]", None, b"[1, 2]", "key path $[5] not found"),
        ("$.id", "$.ts", b'{"id": 1}', "cursor path $.ts not found"),
        ("$.id", "$.ts", b'{"id": 1, "ts": null}', "cursor path $.ts not found"),
        ("hash", "$.ts", b'{"id": 1}', "cursor path $.ts not found"),
        # An empty key would make every later event with an empty key its duplicate.
        ("$.id", None, b'{"id": ""}', "key path $.id is an empty string"),
        ("$.a.b", None, b'{"a": {"b": ""}}', "key path $.a.b is an empty string"),
        ("$.id", "$.ts", b'{"id": 1, "ts": ""}', "cursor path $.ts is an empty string"),
    ],
)
def test_path_not_found_quarantines(key: str, cursor: str | None, doc: bytes, reason: str) -> None:
    assert make(key, cursor, "ws", Message(doc)) == Quarantined(reason, doc, T)


@pytest.mark.parametrize("doc", [b'{"id": ', b"", b"hello", b'{"id": 1} x', b"1e400"])
def test_invalid_json_quarantines(doc: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as info:
        orjson.loads(doc)
    reason = f"invalid JSON: {info.value}"
    assert make("$.id", None, "lines", Message(doc)) == Quarantined(reason, doc, T)
    assert make("hash", "$.id", "lines", Message(doc)) == Quarantined(reason, doc, T)


@pytest.mark.parametrize("key", ["$.id", "hash"])
def test_invalid_utf8_quarantines(key: str) -> None:
    raw = b'{"id": "\xff"}'
    assert make(key, None, "lines", Message(raw)) == Quarantined(
        "invalid UTF-8 at byte 8: invalid start byte", raw, T
    )


def test_payload_is_decoded_text_exactly() -> None:
    raw = '  {"id": "x", "t": "ü"}  '.encode()
    out = make("$.id", None, "lines", Message(raw))
    assert out == Event("x", '  {"id": "x", "t": "ü"}  ', None, T, None)


def test_oversized() -> None:
    keyer = Keyer("hash", None, "lines")
    assert keyer.oversized(Oversized(2_000_000, b"head"), T, 1_048_576) == Quarantined(
        "message of 2000000 bytes exceeds max_message_size 1048576", b"head", T
    )


@pytest.mark.parametrize(
    ("key", "cursor", "transport", "message"),
    [
        ("id", None, "ws", "invalid key 'id': expected 'sse-id', 'hash' or a JSON path"),
        ("hash", "hash", "ws", "invalid cursor 'hash': expected 'sse-id' or a JSON path"),
        ("hash", "ts", "ws", "invalid cursor 'ts'"),
        ("$.", None, "ws", "invalid JSON path"),
        ("hash", "$[", "ws", "invalid JSON path"),
        ("sse-id", None, "ws", "'sse-id' needs transport 'sse', not 'ws'"),
        ("hash", "sse-id", "lines", "'sse-id' needs transport 'sse', not 'lines'"),
    ],
)
def test_invalid_keyer_config(key: str, cursor: str | None, transport: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", "\\$").replace("[", "\\[")):
        Keyer(key, cursor, transport)


@given(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5)))
def test_object_keys_are_canonical(obj: dict[str, object]) -> None:
    reordered = dict(reversed(list(obj.items())))
    a = make("$.k", None, "ws", Message(orjson.dumps({"k": obj})))
    b = make("$.k", None, "ws", Message(orjson.dumps({"k": reordered})))
    assert isinstance(a, Event)
    assert isinstance(b, Event)
    assert a.key == b.key


# --- the fast decoder (one-name paths read without parsing the rest into objects) ---------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


def _reference(doc: bytes, name: str) -> str | None:
    """What the key of ``$.name`` is by the documented rules, from orjson's whole parse."""
    parsed = orjson.loads(doc)
    value = parsed.get(name) if isinstance(parsed, dict) else None
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return orjson.dumps(value).decode()


@given(
    st.dictionaries(st.sampled_from(["id", "ts", "x", "data"]), _json_values, max_size=4)
    | _json_values
)
def test_one_name_paths_key_as_a_whole_parse_does(obj: object) -> None:
    """Keys and cursors read by the fast decoder are exactly those of orjson's whole parse:
    big integers (orjson reads them as floats), floats, booleans, objects and arrays go back
    to the whole parse; absent, null and non-object documents are "not found", and an empty
    string is quarantined as such."""
    doc = json.dumps(obj).encode()  # orjson.dumps refuses integers beyond 64 bits
    key, cursor = _reference(doc, "id"), _reference(doc, "ts")
    out = make("$.id", "$.ts", "lines", Message(doc))
    if key is None:
        assert out == Quarantined("key path $.id not found", doc, T)
    elif key == "":  # an empty key would swallow every later empty one
        assert out == Quarantined("key path $.id is an empty string", doc, T)
    elif cursor is None:
        assert out == Quarantined("cursor path $.ts not found", doc, T)
    elif cursor == "":
        assert out == Quarantined("cursor path $.ts is an empty string", doc, T)
    else:
        assert out == Event(key, doc.decode(), cursor, T, None)


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        (b'{"id": 123456789012345678901234567890}', "1.2345678901234568e+29"),
        (b'{"id": -9223372036854775809}', "-9.223372036854776e+18"),
        (b'{"id": -9223372036854775808}', "-9223372036854775808"),
        (b'{"id": 1, "id": 2}', "2"),
        (b'{"x": [[[{"id": 5}]]], "id": "top"}', "top"),
    ],
)
def test_fast_decoder_edges(doc: bytes, key: str) -> None:
    assert make("$.id", None, "lines", Message(doc)) == Event(key, doc.decode(), None, T, None)


def test_a_number_beyond_floats_in_an_unread_field_is_stored() -> None:
    """The fast decoder validates the syntax of what it skips but does not convert numbers:
    ``1e400`` (valid JSON, too large for a float) in a field the key does not read no longer
    sends the message to quarantine; in the key itself it still does, with orjson's reason."""
    doc = b'{"x": 1e400, "id": 7}'
    assert make("$.id", None, "lines", Message(doc)) == Event("7", doc.decode(), None, T, None)
    bad = b'{"id": 1e400}'
    with pytest.raises(orjson.JSONDecodeError) as info:
        orjson.loads(bad)
    assert make("$.id", None, "lines", Message(bad)) == Quarantined(
        f"invalid JSON: {info.value}", bad, T
    )


def test_streams_keyed_by_the_same_names_share_one_decoder() -> None:
    """A msgspec class and decoder per stream would cost ~2.7 KB per idle stream."""
    a, b = Keyer("$.id", "$.id", "ws"), Keyer("$['id']", "$.id", "lines")
    assert a._decode is b._decode
    assert Keyer("$.id", "$.ts", "ws")._decode is not a._decode
