"""The Processor protocol: what every processor kind (python, webhook, redis, ...) implements.

A processor receives batches of stored events of one stream, in ``seq`` order, at least once.
It signals failure by raising ``ProcessorError``; ``permanent=True`` sends the batch's events
to the dead letters at once (e.g. a webhook answering 400), otherwise the dispatcher retries
with backoff. Each kind lives in its own module with its config model (``kind: Literal[...]``)
and a ``build(config) -> Processor`` function, registered in ``processors/registry.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from longline.core.model import StoredEvent


class ProcessorError(Exception):
    """A delivery failed. ``permanent`` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Processor(Protocol):
    """Delivers batches of stored events somewhere."""

    async def start(self) -> None:
        """Connect (called once before the first delivery)."""

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        """Deliver ``events`` (same stream, increasing seq) or raise ``ProcessorError``."""

    async def close(self) -> None:
        """Release connections."""
