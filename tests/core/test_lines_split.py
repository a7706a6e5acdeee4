"""LineSplitter.split, the bare-bytes fast path: the same lines as ``feed`` for any chunking."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from longline.core.lines import LineSplitter
from longline.core.model import Message, Oversized
from tests.core.test_lines import reference

pieces = st.sampled_from(
    [b"a", b"{}", b'{"id":1}', b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xff", b"xyz" * 5, b"\x0b"]
)
streams = st.lists(pieces, max_size=50).map(b"".join) | st.binary(max_size=80)
limits = st.none() | st.integers(0, 20)


@st.composite
def chunkings(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    return [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]


def run_split(chunks: list[bytes], limit: int | None) -> list[bytes | Oversized]:
    splitter = LineSplitter(limit)
    out: list[bytes | Oversized] = []
    for chunk in chunks:
        out += splitter.split(chunk)
    splitter.close()
    return out


def run_feed(chunks: list[bytes], limit: int | None) -> list[Message | Oversized]:
    splitter = LineSplitter(limit)
    out: list[Message | Oversized] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    splitter.close()
    return out


def as_messages(items: list[bytes | Oversized]) -> list[Message | Oversized]:
    return [Message(x) if isinstance(x, bytes) else x for x in items]


def test_split_returns_bare_bytes() -> None:
    splitter = LineSplitter()
    out = splitter.split(b'{"a":1}\r\nplain\n \t\n\npart')
    assert out == [b'{"a":1}', b"plain"]
    assert all(type(x) is bytes for x in out)
    assert splitter.split(b"ial\n") == [b"partial"]
    assert splitter.split(b"") == []


def test_split_with_limit_gives_oversized_items() -> None:
    splitter = LineSplitter(4)
    assert splitter.split(b"abcd\nabcdef\r\nab") == [b"abcd", Oversized(6, b"abcdef")]
    assert splitter.split(b"cdefgh") == []
    assert splitter.split(b"ij\r") == []
    assert splitter.split(b"\nok\n") == [Oversized(10, b"abcdefghij"), b"ok"]


def test_close_discards_the_partial_line_for_split() -> None:
    splitter = LineSplitter(3)
    assert splitter.split(b"abcdefgh") == []
    splitter.close()
    assert splitter.split(b"xy\n") == [b"xy"]
    splitter.close()
    assert splitter.split(b"par") == []
    splitter.close()
    assert splitter.split(b"t\n") == [b"t"]


@settings(max_examples=400, deadline=None)
@given(st.data(), streams, limits)
def test_split_and_feed_agree_for_any_chunking(
    data: st.DataObject, stream: bytes, limit: int | None
) -> None:
    chunks = data.draw(chunkings(stream))
    split = run_split(chunks, limit)
    assert all(type(x) in (bytes, Oversized) for x in split)
    assert as_messages(split) == run_feed(chunks, limit)
    assert as_messages(split) == reference(stream, limit)
    other = data.draw(chunkings(stream))  # a second, independent chunking
    assert run_split(other, limit) == split


@settings(max_examples=150, deadline=None)
@given(streams, limits)
def test_split_one_byte_chunks_matches_one_chunk(stream: bytes, limit: int | None) -> None:
    bytewise = [stream[i : i + 1] for i in range(len(stream))]
    assert run_split(bytewise, limit) == run_split([stream], limit)


@settings(max_examples=200, deadline=None)
@given(st.data(), streams, limits)
def test_split_and_feed_share_state_when_interleaved(
    data: st.DataObject, stream: bytes, limit: int | None
) -> None:
    chunks = data.draw(chunkings(stream))
    splitter = LineSplitter(limit)
    out: list[Message | Oversized] = []
    for chunk in chunks:
        if data.draw(st.booleans()):
            out += as_messages(splitter.split(chunk))
        else:
            out += splitter.feed(chunk)
    assert out == reference(stream, limit)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.binary(max_size=700), st.integers(0, 400))
def test_split_long_lines_any_chunking(data: st.DataObject, body: bytes, limit: int) -> None:
    stream = body.replace(b"\n", b"") + b"\r\n" + body + b"\n"
    chunks = data.draw(chunkings(stream))
    assert as_messages(run_split(chunks, limit)) == reference(stream, limit)
