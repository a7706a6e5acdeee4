"""Incremental ``text/event-stream`` parser (WHATWG HTML, "Server-sent events", parsing).

Sans-I/O: the SSE transport feeds it body chunks as they arrive and gets framed messages back.
It follows the WHATWG rules exactly (CR, LF and CRLF line ends, also a CRLF split across two
chunks; one leading BOM; comments; ``id`` with NUL ignored; ``retry`` only when all ASCII digits;
the unfinished event discarded at end of stream). The
``data`` path is never decoded: bytes stay raw and the keyer detects invalid UTF-8, so a bad byte
quarantines one message instead of silently becoming U+FFFD. ``event`` and ``id`` values are
decoded with ``errors="replace"``, as a browser would.

The last event ID, as browsers keep it: an ``id`` field sets the *buffer*; each blank line
makes the buffer the *last event ID* (even when no event is dispatched), so an ``id`` in an event
cut off by the end of the stream never counts: resuming after it would skip that event. Every
event carries the last event ID in force (``Message.id``, None when empty) and says whether its
block had an ``id`` field of its own (``Message.own_id``); ``id:`` with an empty value resets the
last event ID to empty. Both the last event ID and ``retry`` survive ``close()`` and seed the
parser of the next connection, as in an ``EventSource``.

Speed: CR and CRLF are normalised to LF in one pass; only the chunk's unfinished last line is
carried over (as a list of pieces, so a long line arriving in many chunks is joined once).
Between events, blocks of the common shape (an optional ``id`` and ``event`` line, in either
order, then one ``data`` line and the blank line) are matched whole by one regular expression,
which is about three times faster than the general line loop; anything else (comments,
``retry``, several data lines, an oversized data line) goes through the line loop, one block at
a time, so the two give the same events (the property tests compare them with a reference).

``max_message_size`` bounds memory against a server that sends one huge event. The rule, the same
whatever the chunking:

- an event whose data (``Message.data``) would be longer than the limit becomes
  ``Oversized(size=len(data), head=data[:256])``; its data is counted, not kept;
- an ``id``, ``event`` or ``retry`` value longer than the limit is ignored (a deviation from
  WHATWG, which has no limit);
- comments and unknown fields are ignored anyway, so their bytes are dropped as they arrive.

The parser then holds at most the limit of data, one unfinished line of about the limit, and the
chunk being parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from longline.core.model import Message, Oversized

_BOM = b"\xef\xbb\xbf"
_HEAD = 256  # bytes of an oversized message kept for the quarantine
_KNOWN = frozenset({b"data", b"id", b"event", b"retry"})
_KEEP, _DATA, _IGNORE = 0, 1, 2  # what becomes of the rest of the unfinished line
_SIMPLE = re.compile(
    rb"(?:id: ?([^\n]*)\n(?:event: ?([^\n]*)\n)?|event: ?([^\n]*)\n(?:id: ?([^\n]*)\n)?)?"
    rb"data: ?([^\n]*)\n\n"
)
_new = object.__new__
_slots = vars(Message)  # the slot descriptors: set fields without the frozen __setattr__
_set_data: Callable[[Message, bytes], None] = _slots["data"].__set__
_set_event: Callable[[Message, str], None] = _slots["event"].__set__
_set_id: Callable[[Message, str | None], None] = _slots["id"].__set__
_set_own: Callable[[Message, bool], None] = _slots["own_id"].__set__


def _message(data: bytes, event: str, ident: str | None, own: bool) -> Message:
    """``Message(data, event, ident, own)`` at half the cost: a frozen dataclass's ``__init__``
    assigns through ``object.__setattr__``; the slot descriptors are direct (same object)."""
    msg: Message = _new(Message)
    _set_data(msg, data)
    _set_event(msg, event)
    _set_id(msg, ident)
    _set_own(msg, own)
    return msg


class SSEParser:
    """Turn an SSE body, fed chunk by chunk, into ``Message`` and ``Oversized`` items.

    ``close()`` ends one stream and readies the parser for the next connection of the same
    source: like a browser's ``EventSource``, the last event ID and the retry delay survive it.
    ``last_event_id`` and ``retry`` seed them (from the previous connection, or the last event
    ID from a stored checkpoint).
    """

    __slots__ = (
        "_bom",
        "_bom_pending",
        "_cr",
        "_data",
        "_head",
        "_id",
        "_last_id",
        "_max",
        "_oversized",
        "_own",
        "_pending",
        "_pending_len",
        "_retry",
        "_size",
        "_skip",
        "_type",
    )

    def __init__(
        self,
        max_message_size: int | None = None,
        *,
        last_event_id: str = "",
        retry: int | None = None,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
        self._max = max_message_size
        self._last_id = last_event_id  # the last event ID (set by each blank line)
        self._id = last_event_id  # the last event ID buffer (set by each ``id`` field)
        self._own = False  # the current block has an ``id`` field of its own
        self._retry = retry
        self._bom = b""  # the first bytes of the stream while they may still be a BOM
        self._bom_pending = True
        self._cr = False  # the last chunk ended with CR: an LF starting the next one is no line
        self._pending: list[bytes] = []  # pieces of the unfinished last line
        self._pending_len = 0
        self._skip = _KEEP
        self._data: list[bytes] = []  # data values of the current event
        self._size = 0  # sum of len(value) + 1 over the current event's data lines
        self._type: str | None = None
        self._oversized = False
        self._head = b""

    @property
    def last_event_id(self) -> str:
        """The last event ID in force ("" when none): what to send as ``Last-Event-ID``."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The reconnection time the server asked for, in milliseconds, if it sent one."""
        return self._retry

    def close(self) -> None:
        """End of stream: discard the unfinished line and event, keep the last event ID and
        retry (an ``id`` of the discarded event does not count)."""
        self._id = self._last_id
        self._own = False
        self._bom = b""
        self._bom_pending = True
        self._cr = False
        self._pending = []
        self._pending_len = 0
        self._skip = _KEEP
        self._data = []
        self._size = 0
        self._type = None
        self._oversized = False
        self._head = b""

    def feed(self, chunk: bytes) -> list[Message | Oversized]:
        """Parse one chunk; return the events it completed, in order."""
        if self._bom_pending:
            chunk = self._bom + chunk
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._bom = chunk
                return []
            self._bom_pending = False
            self._bom = b""
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        out: list[Message | Oversized] = []
        if self._cr and chunk:
            self._cr = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        if self._skip and chunk:
            chunk = self._skip_line(chunk)
        if not chunk:
            return out
        if b"\r" in chunk:
            self._cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif b"\n" not in chunk:
            self._pending.append(chunk)
            self._pending_len += len(chunk)
            if self._max is not None and self._pending_len + self._size > self._max:
                self._check_partial()
            return out
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
        end = chunk.rfind(b"\n") + 1  # complete lines are chunk[:end]
        tail = chunk[end:]
        self._blocks(chunk, end, out)
        if tail:
            self._pending.append(tail)
            self._pending_len = len(tail)
            if self._max is not None and self._pending_len + self._size > self._max:
                self._check_partial()
        else:
            self._pending_len = 0
        return out

    def _blocks(self, chunk: bytes, end: int, out: list[Message | Oversized]) -> None:
        """Process the complete lines ``chunk[:end]``: simple events whole, the rest by line."""
        pos = 0
        while pos < end:
            if not (
                self._data or self._oversized or self._size or self._own or self._type is not None
            ):
                pos = self._simple(chunk, pos, end, out)
                if pos >= end:
                    return
            if chunk[pos] == 10:  # a blank line
                self._lines([b""], out)
                pos += 1
                continue
            blank = chunk.find(b"\n\n", pos, end)
            stop = end if blank < 0 else blank + 2
            self._lines(chunk[pos : stop - 1].split(b"\n"), out)
            pos = stop

    def _simple(self, chunk: bytes, pos: int, end: int, out: list[Message | Oversized]) -> int:
        """Dispatch the simple events starting at ``pos``; return where the first other is."""
        match = _SIMPLE.match
        limit = self._max
        while (m := match(chunk, pos, end)) is not None:
            id1, type1, type2, id2, data = m.groups()
            if limit is not None and len(data) > limit:
                break
            ident = id1 if id1 is not None else id2
            own = False
            if (
                ident is not None
                and b"\x00" not in ident
                and (limit is None or len(ident) <= limit)
            ):
                self._id = self._last_id = ident.decode("utf-8", "replace")
                own = True
            kind = type1 if type1 is not None else type2
            if kind is None or (limit is not None and len(kind) > limit):
                name = "message"
            else:
                name = kind.decode("utf-8", "replace") or "message"
            out.append(_message(data, name, self._last_id or None, own))
            pos = m.end()
        return pos

    def _lines(self, lines: list[bytes], out: list[Message | Oversized]) -> None:
        """Process complete lines (without their line ends)."""
        limit = self._max
        data = self._data
        for line in lines:
            if not line:
                self._last_id = self._id
                if self._oversized:
                    out.append(Oversized(self._size - 1, self._head))
                    self._oversized = False
                    self._head = b""
                elif data:
                    out.append(
                        Message(
                            b"\n".join(data),
                            self._type or "message",
                            self._last_id or None,
                            self._own,
                        )
                    )
                    data.clear()
                self._size = 0
                self._type = None
                self._own = False
                continue
            colon = line.find(b":")
            if colon == 0:
                continue  # comment
            if colon < 0:
                name = line
                value = b""
            else:
                name = line[:colon]
                value = line[colon + 2 :] if line.startswith(b" ", colon + 1) else line[colon + 1 :]
            if name == b"data":
                self._size += len(value) + 1
                if self._oversized:
                    self._add_head(b"\n" + value)
                elif limit is not None and self._size - 1 > limit:
                    self._overflow(value)
                else:
                    data.append(value)
            elif limit is not None and len(value) > limit:
                continue
            elif name == b"id":
                if b"\x00" not in value:
                    self._id = value.decode("utf-8", "replace")
                    self._own = True
            elif name == b"event":
                self._type = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                self._retry = int(value)

    def _overflow(self, value_head: bytes) -> None:
        """The current event just became too big: keep only its head from now on."""
        self._data.append(value_head)
        self._head = b"\n".join(self._data)[:_HEAD]
        self._data.clear()
        self._oversized = True

    def _add_head(self, more: bytes) -> None:
        if len(self._head) < _HEAD:
            self._head = (self._head + more)[:_HEAD]

    def _check_partial(self) -> None:
        """Classify a large unfinished line early, so that its bytes need not be kept.

        Only lines whose outcome is already certain are dropped, so the result does not depend
        on where the chunks were cut.
        """
        limit = self._max
        assert limit is not None
        prefix = b""
        for piece in self._pending:
            prefix += piece[: 8 - len(prefix)]
            if len(prefix) >= 8:
                break
        colon = prefix.find(b":")
        skip = _IGNORE  # comments, unknown fields, names of 8 bytes or more
        if colon < 0:
            if len(prefix) < 6:
                return  # may still become a bare "data", "id", "event" or "retry"
        elif colon > 0 and prefix[:colon] in _KNOWN:
            if len(prefix) == colon + 1:
                return  # whether one space follows the colon is not known yet
            start = colon + 2 if prefix[colon + 1] == 32 else colon + 1
            seen = self._pending_len - start
            if prefix[:colon] != b"data":
                if seen <= limit:
                    return
            elif not self._oversized and self._size + seen <= limit:
                return
            else:
                skip = _DATA
                value_head = b"".join(self._pending)[start : start + _HEAD]
                self._size += seen
                if self._oversized:
                    self._add_head(b"\n" + value_head)
                else:
                    self._overflow(value_head)
        self._pending = []
        self._pending_len = 0
        self._skip = skip

    def _skip_line(self, chunk: bytes) -> bytes:
        """Drop the rest of a line being skipped; return what follows its line end."""
        lf = chunk.find(b"\n")
        cr = chunk.find(b"\r")
        end = lf if cr < 0 or 0 <= lf < cr else cr
        if end < 0:
            if self._skip == _DATA:
                self._size += len(chunk)
                self._add_head(chunk[: _HEAD - len(self._head)])
            return b""
        if self._skip == _DATA:
            self._size += end + 1
            self._add_head(chunk[: min(end, _HEAD - len(self._head))])
        self._skip = _KEEP
        if chunk[end] == 13:
            if end + 1 == len(chunk):
                self._cr = True
            elif chunk[end + 1] == 10:
                end += 1
        return chunk[end + 1 :]
