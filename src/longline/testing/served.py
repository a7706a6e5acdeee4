"""What the session emulators (Slack, Twitch, Discord) share: an aiohttp server on loopback,
the background tasks that produce and deliver events, and ``async with`` around both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = ["ServedEmulator"]


class ServedEmulator:
    """Subclasses set ``host``, ``_port`` (0: any free), ``port = 0``, ``_runner = None`` and
    ``_tasks = []`` in ``__init__``, and say their ``routes``, ``background`` tasks and how to
    ``kill`` every connection."""

    host: str
    port: int
    _port: int
    _runner: web.AppRunner | None
    _tasks: list[asyncio.Task[None]]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def routes(self, app: web.Application) -> None:
        """Add the emulated service's endpoints."""
        raise NotImplementedError

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """The loops that run while the emulator listens."""
        return []

    def kill(self) -> None:
        """Drop every connection without a close frame."""
        raise NotImplementedError

    async def start(self) -> None:
        """Listen (``port`` is then the bound one) and start the background loops."""
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self._port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._tasks = [asyncio.create_task(loop) for loop in self.background()]

    async def stop(self) -> None:
        """Stop the loops, drop every connection, stop listening."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.kill()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
