"""The public Python API: ``App`` composes capture and delivery; ``Event`` is what it hands out.

Everything here is re-exported from ``longline`` itself (``longline.App``, ``longline.Event``).
"""

from __future__ import annotations

from longline.api.app import App, Handler
from longline.api.event import Event
from longline.api.options import StreamOptions
from longline.api.status import LaneStatus, Status, StreamStatus

__all__ = ["App", "Event", "Handler", "LaneStatus", "Status", "StreamOptions", "StreamStatus"]
