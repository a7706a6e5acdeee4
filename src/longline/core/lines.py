"""Split an HTTP body of newline-delimited messages (JSON lines, X's filtered stream) into messages.

Sans-I/O, fed body chunks. A line ends with LF; one trailing CR is stripped (CRLF). Lines made
only of ASCII whitespace (X sends ``\\r\\n`` every 20 s) are keep-alives, not messages. An
unfinished last line at end of stream was cut mid-message and is discarded.

With ``max_message_size`` a line longer than the limit (after stripping its CR) becomes
``Oversized(size=len(line), head=line[:256])`` when its end arrives, whatever the chunking; its
bytes are counted and dropped as they arrive, never buffered whole.
"""

from __future__ import annotations

from longline.core.model import Message, Oversized

_HEAD = 256  # bytes of an oversized line kept for the quarantine


class LineSplitter:
    """Turn a line-delimited body, fed chunk by chunk, into ``Message`` and ``Oversized`` items."""

    __slots__ = ("_head", "_max", "_pending", "_pending_len", "_skip_cr", "_skip_size", "_skipping")

    def __init__(self, max_message_size: int | None = None) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
        self._max = max_message_size
        self._pending: list[bytes] = []  # pieces of the unfinished last line
        self._pending_len = 0
        self._skipping = False  # dropping the rest of an oversized line
        self._skip_size = 0
        self._skip_cr = False  # the last byte dropped was CR (stripped if LF follows)
        self._head = b""

    def close(self) -> None:
        """End of stream: discard the unfinished line; ready for the next stream."""
        self._pending = []
        self._pending_len = 0
        self._skipping = False
        self._skip_size = 0
        self._skip_cr = False
        self._head = b""

    def feed(self, chunk: bytes) -> list[Message | Oversized]:
        """Split one chunk; return the messages it completed, in order."""
        return [Message(x) if isinstance(x, bytes) else x for x in self.split(chunk)]

    def split(self, chunk: bytes) -> list[bytes | Oversized]:
        """Like ``feed``, but complete lines come back as bare ``bytes``.

        The transports' fast path: a line has no fields besides its body, so no ``Message``
        object is made for it (that object cost more than splitting the line).
        """
        out: list[bytes | Oversized] = []
        if self._skipping:
            end = chunk.find(b"\n")
            self._drop(chunk if end < 0 else chunk[:end])
            if end < 0:
                return out
            size = self._skip_size - (1 if self._skip_cr else 0)
            out.append(Oversized(size, self._head[:size]))
            self._skipping = False
            self._skip_size = 0
            self._skip_cr = False
            self._head = b""
            chunk = chunk[end + 1 :]
        if b"\n" not in chunk:
            if chunk:
                self._pending.append(chunk)
                self._pending_len += len(chunk)
                self._check_partial()
            return out
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if b"\r" in chunk:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        limit = self._max
        if limit is None:
            out += [line for line in lines if line and not line.isspace()]
        else:
            for line in lines:
                if len(line) > limit:
                    out.append(Oversized(len(line), line[:_HEAD]))
                elif line and not line.isspace():
                    out.append(line)
        self._pending_len = len(tail)
        if tail:
            self._pending.append(tail)
            self._check_partial()
        return out

    def _check_partial(self) -> None:
        """Start dropping an unfinished line once it is certainly too long.

        One more byte than the limit is kept, because a final CR would be stripped.
        """
        if self._max is None or self._pending_len <= self._max + 1:
            return
        self._skipping = True
        pending = self._pending
        self._pending = []
        self._pending_len = 0
        for piece in pending:
            self._drop(piece)

    def _drop(self, piece: bytes) -> None:
        """Count and drop bytes of the oversized line, keeping its head."""
        if piece:
            self._skip_size += len(piece)
            self._skip_cr = piece[-1] == 13
            if len(self._head) < _HEAD:
                self._head += piece[: _HEAD - len(self._head)]
