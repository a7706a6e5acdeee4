"""SSE regex fast path: streams made of blocks that hit it (an optional ``id`` and ``event`` line
in either order, one ``data`` line, a blank line) and blocks that miss it (comments, ``retry``,
several data lines, unknown fields, ids with NUL, values over the limit) must give, for any
chunking, the messages of the byte-by-byte WHATWG reference in tests/core/test_sse.py."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import longline.core.sse as sse_module
from longline.core.model import Message, Oversized
from longline.core.sse import SSEParser
from tests.core.test_sse import BOM, reference

Item = Message | Oversized

ID_VALUES = [b"", b"1", b"42", b"a\x00b", b"\x00", b"\xff", b" lead", b"i" * 30]
TYPE_VALUES = [b"", b"tick", b"message", b"\xfe", b" sp", b"e" * 30]
DATA_VALUES = [b"", b"x", b" lead", b'{"id":1}', b"a: b", b"\xff", b"\x00", BOM, b"d" * 30]
SEPARATORS = [b":", b": ", b":  "]
ODD_LINES = [
    b":comment",
    b":",
    b"retry:100",
    b"retry: 7",
    b"retry:1x",
    b"retry",
    b"foo: bar",
    b"Data: x",
    b"data ",
    b"id",
    b"event",
    b"data",
    b"ids: 3",
    b"r" * 30,
]


def field(name: bytes, values: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(values)).map(
        lambda t: name + t[0] + t[1]
    )


ids = field(b"id", ID_VALUES)
types = field(b"event", TYPE_VALUES)
datas = field(b"data", DATA_VALUES)


@st.composite
def simple_block(draw: st.DrawFn) -> list[bytes]:
    """The fast path's shape: [id][event] or [event][id], one data line (then a blank line)."""
    head = [line for line in (draw(st.none() | ids), draw(st.none() | types)) if line]
    if draw(st.booleans()):
        head.reverse()
    return [*head, draw(datas)]


@st.composite
def other_block(draw: st.DrawFn) -> list[bytes]:
    """Anything else: several data lines, comments, retry, unknown fields, repeated ids."""
    line = ids | types | datas | st.sampled_from(ODD_LINES)
    return draw(st.lists(line, max_size=5))


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    blocks = draw(st.lists(simple_block() | other_block(), max_size=8))
    stream_eol = draw(st.sampled_from([b"\n", b"\r", b"\r\n"]))
    mixed = draw(st.booleans())
    eol = st.sampled_from([b"\n", b"\r", b"\r\n"]) if mixed else st.just(stream_eol)
    out = [BOM] if draw(st.booleans()) else []
    for lines in blocks:
        for line in lines:
            out += [line, draw(eol)]
        out.append(draw(eol))  # the blank line that dispatches
    if draw(st.booleans()):
        out.append(draw(simple_block())[0])  # an unfinished tail
    return b"".join(out)


limits = st.none() | st.integers(0, 32)


def feed(chunks: list[bytes], limit: int | None) -> tuple[list[Item], SSEParser]:
    parser = SSEParser(limit)
    out: list[Item] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out, parser


@st.composite
def chunkings(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]


@settings(max_examples=500, deadline=None)
@given(st.data(), sse_streams(), limits)
def test_any_chunking_matches_the_bytewise_reference(
    data: st.DataObject, stream: bytes, limit: int | None
) -> None:
    expected, last_id, retry = reference(stream, limit)
    for chunks in (
        [stream],
        data.draw(chunkings(stream)),
        [stream[i : i + 1] for i in range(len(stream))],
    ):
        out, parser = feed(chunks, limit)
        assert out == expected
        assert all(type(x) in (Message, Oversized) for x in out)
        assert parser.last_event_id == last_id
        assert parser.retry == retry


@settings(max_examples=200, deadline=None)
@given(st.lists(simple_block(), min_size=1, max_size=10), limits)
def test_only_simple_blocks_in_one_chunk(blocks: list[list[bytes]], limit: int | None) -> None:
    stream = b"".join(b"".join(line + b"\n" for line in lines) + b"\n" for lines in blocks)
    expected, last_id, _ = reference(stream, limit)
    out, parser = feed([stream], limit)
    assert out == expected
    assert parser.last_event_id == last_id


@settings(max_examples=100, deadline=None)
@given(sse_streams(), sse_streams(), limits)
def test_state_carries_over_between_streams_after_close(
    first: bytes, second: bytes, limit: int | None
) -> None:
    """The last event ID and retry survive ``close`` (as in an ``EventSource``), the same as a
    new parser seeded with them (the next connection's); the fast path must use them too."""
    _, last_id, retry = reference(first, limit)
    parser = SSEParser(limit)
    parser.feed(first)
    parser.close()
    assert parser.last_event_id == last_id
    assert parser.retry == retry
    seeded = SSEParser(limit, last_event_id=last_id, retry=retry)
    assert parser.feed(second) == seeded.feed(second)
    assert parser.last_event_id == seeded.last_event_id
    assert parser.retry == seeded.retry


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records the data of every message made by the fast path (``_message``)."""
    calls: list[bytes] = []
    real = sse_module._message

    def spy(data: bytes, event: str, ident: str | None, own: bool) -> Message:
        calls.append(data)
        return real(data, event, ident, own)

    monkeypatch.setattr(sse_module, "_message", spy)
    return calls


def test_fast_path_is_taken_for_simple_blocks(fast_calls: list[bytes]) -> None:
    stream = (
        b"id: 1\nevent: a\ndata: x\n\nevent: b\nid: 2\ndata: y\n\ndata:z\n\nid:\x003\ndata: w\n\n"
    )
    assert SSEParser().feed(stream) == [
        Message(b"x", "a", "1", own_id=True),
        Message(b"y", "b", "2", own_id=True),
        Message(b"z", "message", "2"),
        Message(b"w", "message", "2"),  # an id with NUL is ignored: not its own
    ]
    assert fast_calls == [b"x", b"y", b"z", b"w"]


def test_fast_path_missed_blocks_give_the_same_messages(fast_calls: list[bytes]) -> None:
    stream = (
        b": hi\ndata: c\n\n"  # comment: line loop
        b"data: a\ndata: b\n\n"  # two data lines: line loop
        b"retry: 5\ndata: r\n\n"  # retry: line loop
        b"id: 1\nid: 2\ndata: i\n\n"  # two ids: line loop
        b"data: f\n\n"  # simple again
    )
    parser = SSEParser()
    assert parser.feed(stream) == [
        Message(b"c", "message", None),
        Message(b"a\nb", "message", None),
        Message(b"r", "message", None),
        Message(b"i", "message", "2", own_id=True),
        Message(b"f", "message", "2"),
    ]
    assert parser.retry == 5
    assert fast_calls == [b"f"]


def test_fast_path_respects_the_limit(fast_calls: list[bytes]) -> None:
    stream = b"id: 12345\nevent: long-type\ndata: 123\n\nid: 7\ndata: 1234567\n\ndata: ok\n\n"
    parser = SSEParser(4)
    assert parser.feed(stream) == [
        Message(b"123", "message", None),  # the id and type over the limit are ignored
        Oversized(7, b"1234567"),
        Message(b"ok", "message", "7"),
    ]
    assert fast_calls == [b"123", b"ok"]


def test_an_id_line_in_an_earlier_chunk_makes_the_block_its_own(fast_calls: list[bytes]) -> None:
    """The block's id was read by the line loop: the rest of it must not take the fast path,
    which would lose that the id is the event's own."""
    parser = SSEParser()
    assert parser.feed(b"id: 1\ndata: a\n\nid: 2\n") == [Message(b"a", "message", "1", True)]
    assert parser.last_event_id == "1"
    assert parser.feed(b"data: b\n\ndata: c\n\n") == [
        Message(b"b", "message", "2", own_id=True),
        Message(b"c", "message", "2"),
    ]
    assert fast_calls == [b"a", b"c"]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_ends_are_normalised_before_the_fast_path(eol: bytes, fast_calls: list[bytes]) -> None:
    stream = BOM + eol.join([b"id: 5", b"event: t", b"data: d", b"", b"data: e", b"", b""])
    assert SSEParser().feed(stream) == [
        Message(b"d", "t", "5", own_id=True),
        Message(b"e", "message", "5"),
    ]
    assert fast_calls == [b"d", b"e"]


def test_fast_path_after_an_event_started_in_an_earlier_chunk(fast_calls: list[bytes]) -> None:
    parser = SSEParser()
    assert parser.feed(b"event: t\n") == []
    assert parser.feed(b"data: x\n\ndata: y\n\n") == [
        Message(b"x", "t", None),
        Message(b"y", "message", None),
    ]
    assert fast_calls == [b"y"]  # the first block was half-parsed: line loop
