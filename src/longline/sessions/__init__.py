"""Provider sessions: the conversations some feeds need (docs/sessions.md).

The public interface for writing one is in ``longline.sessions.base`` and re-exported here.
"""

from longline.sessions.base import (
    Action,
    Control,
    Fail,
    NoOptions,
    Quarantine,
    Ready,
    Received,
    Reconnect,
    Reply,
    Session,
    SessionContext,
    SessionLink,
    Spawn,
    Store,
    Verdict,
    refuse,
    request_json,
)

__all__ = [
    "Action",
    "Control",
    "Fail",
    "NoOptions",
    "Quarantine",
    "Ready",
    "Received",
    "Reconnect",
    "Reply",
    "Session",
    "SessionContext",
    "SessionLink",
    "Spawn",
    "Store",
    "Verdict",
    "refuse",
    "request_json",
]
