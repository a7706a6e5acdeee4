"""Line splitter: CRLF, keep-alives, EOF cuts, oversized lines, chunking independence."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longline.core.lines import LineSplitter
from longline.core.model import Message, Oversized

Item = Message | Oversized


def split(stream: bytes, chunks: list[int] | None = None, limit: int | None = None) -> list[Item]:
    splitter = LineSplitter(limit)
    out: list[Item] = []
    cuts = [0, *(chunks or []), len(stream)]
    for a, b in itertools.pairwise(cuts):
        out += splitter.feed(stream[a:b])
    splitter.close()
    return out


def reference(stream: bytes, limit: int | None = None) -> list[Item]:
    out: list[Item] = []
    for raw in stream.split(b"\n")[:-1]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if limit is not None and len(line) > limit:
            out.append(Oversized(len(line), line[:256]))
        elif line.strip(b" \t\n\r\x0b\x0c"):
            out.append(Message(line))
    return out


def test_lf_and_crlf_lines() -> None:
    assert split(b'{"a":1}\n{"b":2}\r\nplain text\n') == [
        Message(b'{"a":1}'),
        Message(b'{"b":2}'),
        Message(b"plain text"),
    ]


def test_keep_alives_and_blank_lines_are_not_messages() -> None:
    assert split(b"\r\n\n\r\n  \r\n\t\n x \n\r\n") == [Message(b" x ")]


def test_only_one_trailing_cr_is_stripped_and_inner_cr_kept() -> None:
    assert split(b"a\r\r\nb\rc\n") == [Message(b"a\r"), Message(b"b\rc")]


def test_incomplete_final_line_is_discarded() -> None:
    assert split(b"one\ntwo") == [Message(b"one")]
    assert split(b"one\ntwo\r") == [Message(b"one")]


def test_close_discards_and_resets() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"cut mid-") == []
    splitter.close()
    assert splitter.feed(b"fresh\n") == [Message(b"fresh")]


def test_line_spanning_many_chunks() -> None:
    splitter = LineSplitter()
    for _ in range(50):
        assert splitter.feed(b"x" * 1000) == []
    assert splitter.feed(b"\r") == []
    assert splitter.feed(b"\ny\n") == [Message(b"x" * 50_000), Message(b"y")]


def test_empty_chunks() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"") == []
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"") == []
    assert splitter.feed(b"\n") == [Message(b"ab")]


def test_invalid_utf8_is_passed_through() -> None:
    assert split(b"\xff\xfe\n") == [Message(b"\xff\xfe")]


def test_negative_limit_refused() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        LineSplitter(-5)


def test_oversized_line_in_one_chunk() -> None:
    assert split(b"12345\n123456\nok\n", limit=5) == [
        Message(b"12345"),
        Oversized(6, b"123456"),
        Message(b"ok"),
    ]


def test_crlf_does_not_count_towards_the_limit() -> None:
    stream = b"12345\r\n"
    assert split(stream, limit=5) == [Message(b"12345")]
    assert split(stream, list(range(1, len(stream))), limit=5) == [Message(b"12345")]


def test_oversized_line_is_dropped_as_it_arrives() -> None:
    splitter = LineSplitter(1000)
    for _ in range(100):
        assert splitter.feed(b"z" * 10_000) == []
        assert splitter._pending == []
    assert splitter.feed(b"\r\nnext\n") == [Oversized(1_000_000, b"z" * 256), Message(b"next")]


def test_oversized_whitespace_line_is_reported() -> None:
    assert split(b" " * 10 + b"\n", [3], limit=4) == [Oversized(10, b" " * 10)]
    assert split(b" " * 10 + b"\n", limit=4) == [Oversized(10, b" " * 10)]


def test_oversized_unfinished_line_at_eof_is_discarded() -> None:
    assert split(b"a" * 100, [10, 20], limit=5) == []


def test_oversized_head_never_includes_the_stripped_cr() -> None:
    stream = b"abcdefg\r\n"
    assert split(stream, [8], limit=5) == [Oversized(7, b"abcdefg")]
    assert split(stream, [7, 8], limit=5) == [Oversized(7, b"abcdefg")]


pieces = st.sampled_from([b"a", b"{}", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xff", b"xyz" * 5])
streams = st.lists(pieces, max_size=50).map(b"".join) | st.binary(max_size=80)


@settings(max_examples=400, deadline=None)
@given(st.data(), streams, st.none() | st.integers(0, 20))
def test_any_chunking_matches_reference(
    data: st.DataObject, stream: bytes, limit: int | None
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    assert split(stream, cuts, limit) == reference(stream, limit)


@settings(max_examples=150, deadline=None)
@given(streams, st.none() | st.integers(0, 20))
def test_one_byte_chunks(stream: bytes, limit: int | None) -> None:
    assert split(stream, list(range(1, len(stream))), limit) == reference(stream, limit)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.binary(max_size=700), st.integers(0, 400))
def test_long_lines_any_chunking(data: st.DataObject, body: bytes, limit: int) -> None:
    stream = body.replace(b"\n", b"") + b"\r\n" + body + b"\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    assert split(stream, cuts, limit) == reference(stream, limit)
