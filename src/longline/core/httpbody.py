"""An HTTP/1.1 response body, decoded incrementally: sans-I/O, fed the bytes as they arrive.

The direct sse/lines connection (``transports/http_direct.py``) reads the socket itself, so it
undoes what aiohttp's response parser used to: ``Transfer-Encoding: chunked`` (chunk
boundaries may fall anywhere between two reads), a ``Content-Length`` body, or a body that
ends when the connection closes; then ``Content-Encoding: gzip`` or ``deflate`` (aiohttp's
rules: raw deflate accepted when the zlib header is missing). Decompressed output comes in
pieces of at most ``PIECE`` bytes (``feed`` then ``more``) so one small compressed read
cannot inflate into an unbounded buffer.
"""

from __future__ import annotations

import zlib

PIECE = 256 * 1024  # decompressed bytes handed out at once
_LINE_LIMIT = 8 * 1024  # a chunk-size line (with extensions) or trailer line may not be longer
_HEX = b"0123456789abcdefABCDEF"
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class BodyError(ValueError):
    """The body's framing or content coding is broken (the connection cannot go on)."""


class ChunkedDecoder:
    """``Transfer-Encoding: chunked`` undone: ``feed`` returns the payload bytes complete so
    far; ``done`` once the last chunk and its trailer came (later bytes are ignored)."""

    __slots__ = ("_left", "_partial", "_state")

    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0  # payload bytes of the current chunk still to come
        self._partial = b""  # an unfinished size line, trailer line or chunk-ending CRLF

    @property
    def done(self) -> bool:
        """True once the zero-size chunk and the trailer's empty line were read."""
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """The payload in ``data`` (and in what earlier calls held back)."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        out: list[bytes] = []
        pos, end, state = 0, len(data), self._state
        while pos < end:
            if state == _DATA:
                take = min(self._left, end - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._left -= take
                if not self._left:
                    state = _DATA_END
            elif state == _DATA_END:
                if end - pos < 2:
                    if data[pos:end] != b"\r":
                        raise BodyError("chunk not followed by CRLF")
                    self._partial = data[pos:end]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise BodyError("chunk not followed by CRLF")
                pos += 2
                state = _SIZE
            elif state == _DONE:
                break
            else:  # a size line, or a trailer line after the last chunk
                eol = data.find(b"\n", pos)
                if eol < 0:
                    if end - pos > _LINE_LIMIT:
                        raise BodyError("chunk-size line too long")
                    self._partial = data[pos:end]
                    break
                line = data[pos:eol]
                pos = eol + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                if state == _TRAILER:
                    if not line:
                        state = _DONE
                    continue
                size = _chunk_size(line)
                if size:
                    self._left = size
                    state = _DATA
                else:
                    state = _TRAILER
        self._state = state
        return out[0] if len(out) == 1 else b"".join(out)


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip(b" \t")
    if not text or len(text) > 16 or text.translate(None, _HEX):
        raise BodyError(f"invalid chunk size {line[:40]!r}")
    return int(text, 16)


class Body:
    """A response body: its framing (chunked, ``Content-Length``, or until the connection
    closes) and content coding undone. ``feed`` each read; when it returned bytes, call
    ``more`` until it returns ``b""`` (only coded bodies hold any back); ``done`` once the
    framing says the body ended; ``finish`` at end of connection."""

    __slots__ = ("_chunks", "_inflate", "_left", "_started", "encoding")

    def __init__(self, *, chunked: bool, length: int | None, encoding: str = "") -> None:
        encoding = encoding.strip().lower()
        if encoding in ("br", "zstd"):
            raise BodyError(f"Can not decode content-encoding: {encoding}")
        self.encoding = encoding if encoding in ("gzip", "deflate") else ""
        self._chunks = ChunkedDecoder() if chunked else None
        self._left = None if chunked else length  # Content-Length bytes still to come
        self._inflate: zlib._Decompress | None = None
        if self.encoding:
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 15)
        self._started = False  # a coded body's first byte was seen

    @property
    def done(self) -> bool:
        """The framing says the body ended (last chunk, or ``Content-Length`` reached)."""
        if self._chunks is not None:
            return self._chunks.done
        return self._left == 0

    def feed(self, data: bytes) -> bytes:
        """The body bytes that ``data`` carries, decoded (raises ``BodyError``)."""
        if self._chunks is not None:
            data = self._chunks.feed(data)
        elif self._left is not None:
            if len(data) > self._left:
                data = data[: self._left]
            self._left -= len(data)
        if self._inflate is None or not data:
            return data
        return self._decode(data)

    def more(self) -> bytes:
        """Decoded bytes held back by the last ``feed`` (``b""``: none)."""
        inflate = self._inflate
        if inflate is None or not inflate.unconsumed_tail:
            return b""
        return self._decode(b"")

    def finish(self) -> None:
        """End of connection: raise ``BodyError`` if the framing expected more."""
        if (self._chunks is not None and not self._chunks.done) or self._left:
            raise BodyError("Response payload is not completed")
        if self.encoding == "deflate" and self._started:
            assert self._inflate is not None
            if not self._inflate.eof:
                raise BodyError("Can not decode content-encoding: deflate")

    def _decode(self, data: bytes) -> bytes:
        inflate = self._inflate
        assert inflate is not None
        if not self._started and data:
            self._started = True
            if self.encoding == "deflate" and data[0] & 0xF != 8:  # no zlib header: raw
                inflate = self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = inflate.decompress(inflate.unconsumed_tail + data, PIECE)
            while inflate.eof and inflate.unused_data and self.encoding == "gzip":
                rest = inflate.unused_data  # another gzip member follows
                inflate = self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                out += inflate.decompress(rest, PIECE)
        except zlib.error:
            raise BodyError(f"Can not decode content-encoding: {self.encoding}") from None
        return out
