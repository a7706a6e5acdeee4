"""The incremental body decoder: chunked framing split at every byte, Content-Length, close-
delimited bodies, gzip and deflate (zlib and raw), and broken framing refused."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest

from longline.core.httpbody import PIECE, Body, BodyError, ChunkedDecoder

PAYLOAD = b'data: {"id":1}\n\ndata: {"id":2}\n\n: keep-alive\n\n' + b"x" * 300 + b"\n"
# Chunk sizes in hex of both cases, an extension, a trailer: what servers send.
CHUNKED = (
    b"10\r\n" + PAYLOAD[:16] + b"\r\n"
    b"1;name=value\r\n" + PAYLOAD[16:17] + b"\r\n"
    b"%x\r\n" % (len(PAYLOAD) - 17 - 300) + PAYLOAD[17:-300] + b"\r\n"
    b"12C\r\n" + PAYLOAD[-300:] + b"\r\n"
    b"0\r\nX-Trailer: yes\r\n\r\n"
)


def decode(decoder: ChunkedDecoder | Body, pieces: list[bytes]) -> bytes:
    out = bytearray()
    for piece in pieces:
        got = decoder.feed(piece)
        while got:
            out += got
            got = decoder.more() if isinstance(decoder, Body) else b""
    return bytes(out)


def every_split(data: bytes) -> list[list[bytes]]:
    """``data`` whole, cut once at every position, and cut into single bytes."""
    cuts = [[data[:i], data[i:]] for i in range(1, len(data))]
    return [[data], *cuts, [data[i : i + 1] for i in range(len(data))]]


def test_chunked_split_at_every_point_and_in_pairs_of_points() -> None:
    for pieces in every_split(CHUNKED):
        decoder = ChunkedDecoder()
        assert decode(decoder, pieces) == PAYLOAD
        assert decoder.done
    # two cuts, every pair among the framing bytes of the first two chunks
    for i, j in itertools.combinations(range(1, 30), 2):
        decoder = ChunkedDecoder()
        assert decode(decoder, [CHUNKED[:i], CHUNKED[i:j], CHUNKED[j:]]) == PAYLOAD
        assert decoder.done


def test_chunked_not_done_until_the_trailer_ends_and_later_bytes_are_ignored() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n") == b"abc"
    assert not decoder.done
    assert decoder.feed(b"X-T: 1\r\n") == b""
    assert not decoder.done
    assert decoder.feed(b"\r\n3\r\nxyz\r\n") == b""
    assert decoder.done


@pytest.mark.parametrize(
    "bad",
    [b"zz\r\nab\r\n", b"0x2\r\nab\r\n", b"-2\r\nab\r\n", b"2\r\nabXY", b"\r\n", b"1" * 9000],
)
def test_broken_chunked_framing_is_an_error(bad: bytes) -> None:
    with pytest.raises(BodyError):
        ChunkedDecoder().feed(bad)


def test_content_length_stops_at_the_length() -> None:
    body = Body(chunked=False, length=5)
    assert body.feed(b"abc") == b"abc" and not body.done
    assert body.feed(b"deXYZ") == b"de" and body.done
    body.finish()


def test_content_length_cut_short_and_chunked_cut_short_are_errors() -> None:
    short = Body(chunked=False, length=5)
    short.feed(b"abc")
    with pytest.raises(BodyError, match="not completed"):
        short.finish()
    cut = Body(chunked=True, length=None)
    assert cut.feed(b"5\r\nab") == b"ab"
    with pytest.raises(BodyError, match="not completed"):
        cut.finish()


def test_a_close_delimited_body_is_every_byte_until_the_close() -> None:
    body = Body(chunked=False, length=None)
    assert decode(body, [b"abc", b"", b"def"]) == b"abcdef"
    assert not body.done
    body.finish()


@pytest.mark.parametrize(
    ("encoding", "coded"),
    [
        ("gzip", gzip.compress(PAYLOAD, mtime=0)),
        ("GZIP", gzip.compress(PAYLOAD[:100], mtime=0) + gzip.compress(PAYLOAD[100:], mtime=0)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)[2:-4]),  # raw deflate, as aiohttp accepts
    ],
    # Named, not shown: the ids must be the same in every xdist worker (a gzip header holds
    # its time of making, which made ids differ when two workers collected a second apart).
    ids=["gzip", "gzip-two-members", "deflate", "raw-deflate"],
)
def test_gzip_and_deflate_split_at_every_point(encoding: str, coded: bytes) -> None:
    for pieces in every_split(coded):
        body = Body(chunked=False, length=None, encoding=encoding)
        assert decode(body, pieces) == PAYLOAD
        body.finish()


def test_gzip_inside_chunks() -> None:
    coded = gzip.compress(PAYLOAD)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (coded[:7], coded[7:])) + b"0\r\n\r\n"
    for pieces in every_split(framed):
        body = Body(chunked=True, length=None, encoding="gzip")
        assert decode(body, pieces) == PAYLOAD
        assert body.done


def test_a_highly_compressed_read_comes_out_in_bounded_pieces() -> None:
    body = Body(chunked=False, length=None, encoding="gzip")
    big = b"a" * (3 * PIECE + 5)
    first = body.feed(gzip.compress(big))
    pieces = [first]
    while piece := body.more():
        pieces.append(piece)
    assert all(len(p) <= PIECE for p in pieces)
    assert b"".join(pieces) == big


def test_bad_coding_and_unsupported_codings_are_errors() -> None:
    with pytest.raises(BodyError, match="gzip"):
        Body(chunked=False, length=None, encoding="gzip").feed(b"not gzip at all")
    with pytest.raises(BodyError, match="br"):
        Body(chunked=False, length=None, encoding="br")
    unfinished = Body(chunked=False, length=None, encoding="deflate")
    unfinished.feed(zlib.compress(PAYLOAD)[:20])
    with pytest.raises(BodyError, match="deflate"):
        unfinished.finish()


def test_unknown_codings_pass_through() -> None:
    body = Body(chunked=False, length=None, encoding="identity")
    assert body.feed(b"abc") == b"abc"
