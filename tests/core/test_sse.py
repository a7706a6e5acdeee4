"""SSE parser: the WHATWG rules (web-platform-tests eventsource/format-* cases), chunking
independence against a literal reference implementation, and the max_message_size rule."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longline.core.model import Message, Oversized
from longline.core.sse import SSEParser

BOM = b"\xef\xbb\xbf"
Item = Message | Oversized


def parse(stream: bytes, chunks: list[int] | None = None, **kw: object) -> list[Item]:
    """Feed ``stream`` cut at ``chunks`` (positions), then close."""
    parser = SSEParser(**kw)  # type: ignore[arg-type]
    out: list[Item] = []
    cuts = [0, *(chunks or []), len(stream)]
    for a, b in itertools.pairwise(cuts):
        out += parser.feed(stream[a:b])
    parser.close()
    return out


def bytewise(stream: bytes, **kw: object) -> list[Item]:
    return parse(stream, list(range(1, len(stream))), **kw)


def msg(data: bytes, event: str = "message", id: str | None = None, own: bool = False) -> Message:
    return Message(data, event, id, own)


def reference(stream: bytes, limit: int | None = None) -> tuple[list[Item], str, int | None]:
    """The WHATWG algorithm, literally, byte by byte, plus longline's size rule.

    Returns the events, the last event ID (as a browser keeps it: set from the buffer by each
    blank line, so an ``id`` of an unfinished event does not count) and the retry delay.
    """
    if stream.startswith(BOM):
        stream = stream[3:]
    lines, start, pos = [], 0, 0
    while pos < len(stream):
        if stream[pos] in b"\r\n":
            lines.append(stream[start:pos])
            if stream[pos : pos + 2] == b"\r\n":
                pos += 1
            start = pos + 1
        pos += 1
    out: list[Item] = []
    data, etype, id_buffer, last_id, own, retry = b"", "", "", "", False, None
    for line in lines:
        if line == b"":
            last_id = id_buffer
            if data:
                body = data[:-1]
                if limit is not None and len(body) > limit:
                    out.append(Oversized(len(body), body[:256]))
                else:
                    out.append(Message(body, etype or "message", last_id or None, own))
            data, etype, own = b"", "", False
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if limit is not None and name != b"data" and len(value) > limit:
            continue
        if name == b"data":
            data += value + b"\n"
        elif name == b"event":
            etype = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            id_buffer = value.decode("utf-8", "replace")
            own = True
        elif name == b"retry" and value and all(c in b"0123456789" for c in value):
            retry = int(value)
    return out, last_id, retry


# --- web-platform-tests eventsource/format-* cases --------------------------------------------

WPT_CASES = {
    "format-bom": (
        BOM + b"data:1\n\n" + BOM + b"data:2\n\ndata:3\n\n",
        [msg(b"1"), msg(b"3")],
    ),
    "format-bom-2": (BOM + BOM + b"data:1\n\ndata:2\n\ndata:3\n\n", [msg(b"2"), msg(b"3")]),
    "format-comments": (
        b"data:1\r:\0\n:\r\ndata:2\n:"
        + b"x" * 5000
        + b"\rdata:3\n:data:fail\r:"
        + b"y" * 5000
        + b"\ndata:4\n\n",
        [msg(b"1\n2\n3\n4")],
    ),
    "format-data-before-final-empty-line": (b"data:test1\n\nid:test\ndata:test2", [msg(b"test1")]),
    "format-field-data": (
        b"data:\n\ndata\ndata\n\ndata:test\n\n",
        [msg(b""), msg(b"\n"), msg(b"test")],
    ),
    "format-field-event": (
        b"event:test\ndata:x\n\ndata:x\n\n",
        [msg(b"x", "test"), msg(b"x")],
    ),
    "format-field-event-empty": (b"event: \ndata:data\n\n", [msg(b"data")]),
    "format-field-id": (
        b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n",
        [msg(b"a", id="1", own=True), msg(b"b", id="2", own=True)],
    ),
    "format-field-id-2": (
        b"id:1\ndata:1\n\ndata:2\n\nid\ndata:3\n\n",
        [msg(b"1", id="1", own=True), msg(b"2", id="1"), msg(b"3", own=True)],
    ),
    "format-field-id-3": (
        b"id:1\ndata:1\n\nid:\ndata:2\n\n",
        [msg(b"1", id="1", own=True), msg(b"2", own=True)],
    ),
    "format-field-id-null": (
        b"id:1\ndata:a\n\nid:2\x003\ndata:b\n\nid:\x00\ndata:c\n\n",
        [msg(b"a", id="1", own=True), msg(b"b", id="1"), msg(b"c", id="1")],
    ),
    "format-field-parsing": (
        b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n"
        b" data:32\ndata:4\n\n",
        [msg(b"\0\n 2\n1\n3\n\n4")],
    ),
    "format-field-unknown": (b"data:test\n field\nfield:x\n\n", [msg(b"test")]),
    "format-leading-space": (b"data:\ttest\rdata: \ndata:test\n\n", [msg(b"\ttest\n\ntest")]),
    "format-newlines": (b"data:test\r\ndata\ndata:test\r\n\r\n", [msg(b"test\n\ntest")]),
    "format-null-character": (b"data:\0\n\n\n\n", [msg(b"\0")]),
    "format-utf-8": (
        "data:ok…\n\n".encode(),
        [msg("ok…".encode())],
    ),
    "two-spaces": (b"data:  x\n\n", [msg(b" x")]),
    "no-space": (b"data:x\n\ndata: x\n\n", [msg(b"x"), msg(b"x")]),
    "colon-in-value": (b"data: a: b\n\n", [msg(b"a: b")]),
    "empty-data-buffer-no-dispatch": (
        b"id:5\n\nevent:e\n\n:c\n\n\n\ndata:x\n\n",
        [msg(b"x", id="5")],  # the id of a block without data is in force, not its own
    ),
    "id-only-block-then-id-less-events": (
        b"id: 3\n\ndata: a\n\n: comment\n\ndata: b\n\n",
        [msg(b"a", id="3"), msg(b"b", id="3")],
    ),
    "last-id-field-of-a-block-wins": (
        b"id: 1\nid: 2\ndata: a\n\nid: 3\nid:\ndata: b\n\nid: 4\nid: 5\x00\ndata: c\n\n",
        [msg(b"a", id="2", own=True), msg(b"b", own=True), msg(b"c", id="4", own=True)],
    ),
    "id-reset-then-id-less-events-carry-no-id": (
        b"id: 1\ndata: a\n\nid\n\ndata: b\n\nid: 2\ndata: c\n\ndata: d\n\n",
        [msg(b"a", id="1", own=True), msg(b"b"), msg(b"c", id="2", own=True), msg(b"d", id="2")],
    ),
    "event-type-reset-after-dispatch": (
        b"event:a\n\ndata:x\n\nevent:b\ndata:y\n\ndata:z\n\n",
        [msg(b"x"), msg(b"y", "b"), msg(b"z")],
    ),
    "event-no-colon": (b"event\ndata:x\n\n", [msg(b"x")]),
    "crlf-blank": (b"data:x\r\n\r\ndata:y\r\rdata:z\n\n", [msg(b"x"), msg(b"y"), msg(b"z")]),
    "cr-cr-lf": (b"data:x\r\r\ndata:y\n\n", [msg(b"x"), msg(b"y")]),
    "invalid-utf8-kept-raw": (b"data:\xff\xfe\n\n", [msg(b"\xff\xfe")]),
    "id-invalid-utf8-replaced": (b"id:\xff\ndata:x\n\n", [msg(b"x", id="\ufffd", own=True)]),
    "bom-only-at-start": (b"data:1\n\n" + BOM + b"data:2\n\n", [msg(b"1")]),
}


@pytest.mark.parametrize("name", sorted(WPT_CASES))
def test_wpt_format_case(name: str) -> None:
    stream, expected = WPT_CASES[name]
    assert parse(stream) == expected
    assert bytewise(stream) == expected
    assert reference(stream)[0] == expected


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"retry:1000\n", 1000),
        (b"retry: 1000\n", 1000),
        (b"retry:1000\nretry:0\n", 0),
        (b"retry:1000\nretry:1000x\n", 1000),
        (b"retry:1000\nretry: \n", 1000),
        (b"retry:1000\nretry\n", 1000),
        (b"retry:-1\n", None),
        (b"retry:1.5\n", None),
        (b"retry:  1\n", None),
        (b"retry:\xd9\xa3\n", None),  # ARABIC-INDIC DIGIT THREE is not an ASCII digit
        (b"retry:1000", None),  # unterminated line at EOF
    ],
)
def test_retry(stream: bytes, expected: int | None) -> None:
    parser = SSEParser()
    assert parser.feed(stream) == []
    parser.close()
    assert parser.retry == expected


def test_last_event_id_property_persists_and_survives_close() -> None:
    parser = SSEParser()
    assert parser.last_event_id == ""
    assert parser.feed(b"id: 7\ndata: a\n\n") == [msg(b"a", id="7", own=True)]
    assert parser.feed(b"id: 8\n\n") == []  # an id-only block moves the last event ID
    assert parser.last_event_id == "8"
    assert parser.feed(b"data: b\n\n") == [msg(b"b", id="8")]
    parser.close()
    assert parser.last_event_id == "8"
    # a new stream on the same parser: id persists (WHATWG), BOM is skipped again
    assert parser.feed(BOM + b"data: c\n\n") == [msg(b"c", id="8")]


def test_id_of_an_event_cut_off_by_the_end_of_the_stream_does_not_count() -> None:
    """Resuming after the id of an event never received would lose that event (browsers, too,
    take the last event ID from the last blank line)."""
    parser = SSEParser()
    assert parser.feed(b"id: 7\ndata: a\n\nid: 8\n") == [msg(b"a", id="7", own=True)]
    assert parser.last_event_id == "7"
    assert parser.feed(b"data: cut") == []
    parser.close()
    assert parser.last_event_id == "7"
    assert parser.feed(b"data: b\n\n") == [msg(b"b", id="7")]


def test_seeded_last_event_id() -> None:
    parser = SSEParser(last_event_id="42")
    assert parser.feed(b"data: x\n\nid\ndata: y\n\n") == [
        msg(b"x", id="42"),
        msg(b"y", own=True),
    ]
    assert parser.last_event_id == ""


def test_retry_survives_close_and_seeds_the_next_parser() -> None:
    parser = SSEParser(retry=250)
    assert parser.retry == 250
    assert parser.feed(b"retry: 300\ndata: x\n\n") == [msg(b"x")]
    parser.close()
    assert parser.retry == 300
    assert parser.feed(b"retry: soon\ndata: y\n\n") == [msg(b"y")]
    assert parser.retry == 300


def test_close_discards_unfinished_event_and_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\ndata: b") == []
    parser.close()
    assert parser.feed(b"\n\ndata: c\n\n") == [msg(b"c")]


def test_close_resets_pending_cr() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    parser.close()
    # the LF starts a new stream: it is a blank line there, not the end of the old CR
    assert parser.feed(b"\ndata: b\n\n") == [msg(b"b")]


def test_cr_at_chunk_end_then_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == []  # same line end as the CR, not a blank line
    assert parser.feed(b"\r") == [msg(b"a")]


def test_cr_at_chunk_end_then_cr() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\rdata: b\r\n\r\n") == [msg(b"a"), msg(b"b")]


@pytest.mark.parametrize("cut", [1, 2])
def test_bom_split_across_chunks(cut: int) -> None:
    stream = BOM + b"data: x\n\n"
    assert parse(stream, [cut]) == [msg(b"x")]
    assert parse(stream, [1, 2]) == [msg(b"x")]


def test_bom_prefix_that_is_not_a_bom() -> None:
    assert parse(b"\xef\xbbdata:x\n\ndata:y\n\n", [1]) == [msg(b"y")]
    assert parse(b"\xefdata:x\n\n") == []


def test_empty_and_tiny_streams() -> None:
    assert parse(b"") == []
    assert parse(BOM) == []
    assert parse(b"\xef") == []
    assert parse(b"\n\n\r\n") == []


def test_many_events_in_one_chunk() -> None:
    stream = b"".join(b'id: %d\ndata: {"n": %d}\n\n' % (i, i) for i in range(1000))
    out = parse(stream)
    assert out == [msg(b'{"n": %d}' % i, id=str(i), own=True) for i in range(1000)]


def test_long_line_in_many_chunks() -> None:
    body = b"z" * 100_000
    stream = b"data: " + body + b"\n\n"
    assert parse(stream, list(range(10, len(stream), 997))) == [msg(body)]


def test_negative_limit_refused() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        SSEParser(-1)


# --- max_message_size -------------------------------------------------------------------------


def test_oversized_event_in_one_chunk() -> None:
    stream = b"data: 12345\ndata: 678\n\ndata: ok\n\n"
    assert parse(stream, max_message_size=8) == [Oversized(9, b"12345\n678"), msg(b"ok")]
    assert parse(stream, max_message_size=9) == [msg(b"12345\n678"), msg(b"ok")]


def test_oversized_keeps_id_and_event_processing() -> None:
    stream = b"id: 1\nevent: big\ndata: 0123456789\n\ndata: x\n\n"
    assert parse(stream, max_message_size=5) == [Oversized(10, b"0123456789"), msg(b"x", id="1")]


def test_oversized_head_is_first_256_bytes_of_data() -> None:
    body = bytes(range(256)).replace(b"\n", b"-").replace(b"\r", b"-") * 40
    stream = b"data:" + body + b"\ndata:tail\n\n"
    expected = [Oversized(len(body) + 5, body[:256])]
    assert parse(stream, max_message_size=1000) == expected
    assert parse(stream, list(range(3, len(stream), 100)), max_message_size=1000) == expected


def test_oversized_line_is_not_buffered() -> None:
    parser = SSEParser(max_message_size=1000)
    assert parser.feed(b"data: ") == []
    for _ in range(100):
        assert parser.feed(b"x" * 10_000) == []
        assert parser._pending == []  # dropped as it arrives
        assert parser._data == []
    assert parser.feed(b"\ndata: more\n\nid: 3\ndata: ok\n\n") == [
        Oversized(1_000_005, b"x" * 256),  # 10**6 x, LF, "more"
        msg(b"ok", id="3", own=True),
    ]


def test_second_long_line_of_an_oversized_event_is_dropped_as_it_arrives() -> None:
    parser = SSEParser(max_message_size=10)
    assert parser.feed(b"data: 0123456789AB\ndata: ") == []
    for _ in range(3):
        assert parser.feed(b"y" * 10) == []
        assert parser._pending == []
    assert parser.feed(b"\r\n\r\n") == [Oversized(43, b"0123456789AB\n" + b"y" * 30)]


def test_oversized_comment_and_unknown_lines_dropped_as_they_arrive() -> None:
    parser = SSEParser(max_message_size=10)
    for start in (b":", b"unknown-field", b"foo: bar"):
        assert parser.feed(start + b"y" * 50) == []
        assert parser._pending == []
        assert parser.feed(b"y" * 50 + b"\r\n") == []
    assert parser.feed(b"data: ok\n\n") == [msg(b"ok")]


def test_overlong_id_event_retry_values_are_ignored() -> None:
    stream = b"id: 1\nid: 12345678901\nevent: 12345678901\nretry: 12345678901\ndata: x\n\n"
    parser = SSEParser(max_message_size=10)
    assert parser.feed(stream) == [msg(b"x", id="1", own=True)]
    assert parser.retry is None
    assert bytewise(stream, max_message_size=10) == [msg(b"x", id="1", own=True)]


def test_data_exactly_at_limit() -> None:
    assert parse(b"data: abcd\n\n", max_message_size=4) == [msg(b"abcd")]
    assert bytewise(b"data: abcd\n\n", max_message_size=4) == [msg(b"abcd")]
    assert bytewise(b"data: abcde\n\n", max_message_size=4) == [Oversized(5, b"abcde")]


def test_limit_zero_allows_empty_data() -> None:
    assert parse(b"data\n\ndata\ndata\n\n", max_message_size=0) == [msg(b""), Oversized(1, b"\n")]


def test_oversized_unfinished_event_at_eof_is_discarded() -> None:
    assert parse(b"data: " + b"x" * 100, max_message_size=10) == []
    assert parse(b"data: " + b"x" * 100 + b"\n", max_message_size=10) == []


# --- properties -------------------------------------------------------------------------------

TOKENS = [
    b"data", b"data:", b"data: ", b"id:", b"id", b"event:", b"event", b"retry:", b"retry",
    b":", b" ", b"\n", b"\n", b"\r", b"\r\n", b"\n\n", b"1", b"23", b"x", b"\0", BOM, b"\xff",
    b"\xc3\xa9", b"Data:", b"ab" * 10,
]  # fmt: skip
token_streams = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)

_value = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
_field = st.tuples(
    st.sampled_from([b"data", b"id", b"event", b"retry", b"", b"x", b"data ", b"dat"]),
    st.sampled_from([b":", b": ", b""]),
    _value | st.sampled_from([b"0", b"12", b"\x00", b"a\x00b", b"\xef\xbb\xbf"]),
).map(lambda t: t[0] + t[1] + t[2] if t[1] or not t[0] else t[0])
_event = st.lists(_field, min_size=0, max_size=5)
_eol = st.sampled_from([b"\n", b"\r", b"\r\n"])


@st.composite
def structured_streams(draw: st.DrawFn) -> bytes:
    out = [BOM] if draw(st.booleans()) else []
    for fields in draw(st.lists(_event, max_size=6)):
        for field in fields:
            out += [field, draw(_eol)]
        out.append(draw(_eol))
    if draw(st.booleans()):
        out.append(draw(_field))  # an unfinished tail
    return b"".join(out)


streams = token_streams | structured_streams()
limits = st.none() | st.integers(0, 24)


@st.composite
def cuts(draw: st.DrawFn, stream: bytes) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))


@settings(max_examples=400, deadline=None)
@given(st.data(), streams, limits)
def test_any_chunking_matches_reference(
    data: st.DataObject, stream: bytes, limit: int | None
) -> None:
    expected, last_id, retry = reference(stream, limit)
    parser = SSEParser(limit)
    out: list[Item] = []
    points = [0, *data.draw(cuts(stream)), len(stream)]
    for a, b in itertools.pairwise(points):
        out += parser.feed(stream[a:b])
    assert out == expected
    assert parser.last_event_id == last_id
    assert parser.retry == retry
    parser.close()


@settings(max_examples=150, deadline=None)
@given(streams, limits)
def test_one_byte_chunks_match_one_chunk(stream: bytes, limit: int | None) -> None:
    assert bytewise(stream, max_message_size=limit) == parse(stream, max_message_size=limit)


@settings(max_examples=100, deadline=None)
@given(st.data(), st.binary(min_size=0, max_size=600), st.integers(0, 300))
def test_large_data_lines_any_chunking(data: st.DataObject, body: bytes, limit: int) -> None:
    body = body.replace(b"\n", b".").replace(b"\r", b".")
    stream = b"data: " + body + b"\r\ndata: " + body[:50] + b"\r\rdata: tail\r\n\r\n"
    expected = reference(stream, limit)[0]
    assert parse(stream, data.draw(cuts(stream)), max_message_size=limit) == expected
    first = body + b"\n" + body[:50]
    assert expected[0] == (
        msg(first) if len(first) <= limit else Oversized(len(first), first[:256])
    )
    assert expected[1] == (msg(b"tail") if limit >= 4 else Oversized(4, b"tail"))
