"""``longline provider --preset NAME``: serve a provider emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import click

from longline.testing.slack import APP_TOKEN, SlackEmulator

__all__ = ["PRESETS", "serve_preset"]

PRESETS = ("slack",)


async def serve_preset(
    preset: str, host: str, port: int, total: int, rate: float, refresh_every: float | None
) -> None:
    """Serve the emulator of ``preset`` and print how to point a stream at it."""
    try:
        slack = SlackEmulator(
            total=total, rate=rate, refresh_every=refresh_every, host=host, port=port
        )
        await slack.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    click.echo(f"longline provider (slack) listening on http://{host}:{slack.port}")
    click.echo(f"  session: {{preset: slack-socket-mode, api_url: {slack.api_url}, ", nl=False)
    click.echo(f"app_token: {APP_TOKEN}}}")
    try:
        await stopping.wait()
    finally:
        await slack.stop()
