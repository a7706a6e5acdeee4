"""``kind: python``: call a function of your own with each batch, in this process.

The target is imported when the processor starts (not when the config loads, so ``longline
check`` never runs user code). A plain function runs in a worker thread so it cannot stall the
event loop that captures; an ``async def`` runs on the loop and must not block it. Any exception
it raises is retried; raise ``ProcessorError(..., permanent=True)`` to dead-letter the batch.

``longline.App``'s ``@app.processor`` decorator registers an in-process callable through this
same class (given as ``handler``, with ``shape`` building typed ``longline.Event`` objects
instead of dicts), so it gets the dispatcher's guarantees like any other kind.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import field_validator

from longline.core.model import StoredEvent
from longline.processors.base import ProcessorError, event_dicts
from longline.processors.registry import ProcessorKind, ProcessorSettings

__all__ = ["KIND", "TARGET", "PythonProcessor", "PythonSettings", "build", "resolve_target"]

TARGET = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
Handler = Callable[[list[Any]], Any]
Shape = Callable[[str, Sequence[StoredEvent]], list[Any]]  # what the handler gets per batch


class PythonSettings(ProcessorSettings):
    """``target: "package.module:function"``: a callable taking a list of event dicts."""

    kind: Literal["python"]
    target: str

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not TARGET.fullmatch(v):
            raise ValueError('must look like "package.module:function"')
        return v


def resolve_target(target: str) -> Handler:
    """Import ``module:attr.path``; raises a permanent ``ProcessorError`` when it cannot."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ProcessorError(f"cannot import {target}: {exc}", permanent=True) from exc
    if not callable(obj):
        raise ProcessorError(f"{target} is not callable", permanent=True)
    fn: Handler = obj
    return fn


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class PythonProcessor:
    """Calls the target with ``[event_dict, ...]`` of one stream, in seq order (or with what
    ``shape`` makes of the batch)."""

    def __init__(
        self, settings: PythonSettings, handler: Handler | None = None, shape: Shape = event_dicts
    ) -> None:
        self.settings = settings
        self._handler = handler
        self._shape = shape

    async def start(self) -> None:
        if self._handler is None:
            self._handler = resolve_target(self.settings.target)

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        if self._handler is None:
            await self.start()
        handler = self._handler
        assert handler is not None
        batch = self._shape(stream, events)
        try:
            if _is_async(handler):
                await handler(batch)
            else:
                result = await asyncio.to_thread(handler, batch)
                if inspect.isawaitable(result):
                    await result
        except ProcessorError:
            raise
        except Exception as exc:
            raise ProcessorError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


def build(settings: PythonSettings) -> PythonProcessor:
    return PythonProcessor(settings)


KIND = ProcessorKind("python", PythonSettings, build)
