"""Build the connect request for a stream from its stored checkpoint.

The cursor goes back to the provider the way the stream's ``resume`` setting says: as a header
(SSE ``Last-Event-ID``), a query parameter, or inside the subscribe messages (``{cursor}``).
Pure: fed settings and a cursor, returns what to send.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CURSOR_PLACEHOLDER = "{cursor}"


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Everything a transport needs to open one connection."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    subscribe: tuple[str, ...] = ()
    # SSE: the last event ID in force and the reconnection time (ms) the server last asked for.
    # A browser's EventSource carries both across reconnects, so events after a reconnect that
    # have no ``id:`` line of their own still get one, and ``retry`` still holds.
    last_event_id: str = ""
    retry: int | None = None
    # ``resume.query`` with the cursor, for a URL only known at connect time (a session's
    # ``connect_url`` answer or a URL it was told to follow): applied to that URL too.
    resume_query: tuple[str, str] | None = None


def with_query(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value`` (replacing an existing one)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


def build_request(
    url: str,
    headers: dict[str, str],
    subscribe: list[str] | tuple[str, ...],
    *,
    resume_header: str | None,
    resume_query: str | None,
    cursor: str | None,
) -> ConnectRequest:
    """The request that resumes from ``cursor`` (None: start wherever the provider starts).

    Subscribe messages always have ``{cursor}`` replaced (by "" when there is no checkpoint yet),
    so a subscribe-resumed feed and one that merely needs a subscription share one code path.
    """
    out_headers = dict(headers)
    out_url = url
    query = None
    if cursor is not None and cursor != "":
        if resume_header:
            out_headers[resume_header] = cursor
        if resume_query:
            query = (resume_query, cursor)
            out_url = with_query(url, *query)
    text = cursor or ""
    messages = tuple(m.replace(CURSOR_PLACEHOLDER, text) for m in subscribe)
    return ConnectRequest(url=out_url, headers=out_headers, subscribe=messages, resume_query=query)
