"""``longline provider --preset NAME``: serve a provider emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import click

from longline.testing import discord, slack, twitch

__all__ = ["PRESETS", "serve_preset"]

PRESETS = ("slack", "twitch", "discord")


class _Emulator(Protocol):
    port: int

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _build(
    preset: str, host: str, port: int, total: int, rate: float, refresh_every: float | None
) -> tuple[_Emulator, str]:
    """The emulator and the ``session:`` that points a stream at it."""
    if preset == "slack":
        s = slack.SlackEmulator(
            total=total, rate=rate, refresh_every=refresh_every, host=host, port=port
        )
        return (
            s,
            "{preset: slack-socket-mode, api_url: %(api)s, app_token: " + slack.APP_TOKEN + "}",
        )
    if preset == "discord":
        d = discord.DiscordEmulator(
            total=total, rate=rate, reconnect_every=refresh_every, host=host, port=port
        )
        return (
            d,
            "{preset: discord-gateway, api_url: %(api)s, token: "
            + discord.TOKEN
            + ", intents: 513}",
        )
    t = twitch.TwitchEmulator(
        total=total, rate=rate, reconnect_every=refresh_every, host=host, port=port
    )
    return t, (
        "{preset: twitch-eventsub, url: %(ws)s, api_url: %(api)s, client_id: "
        + twitch.CLIENT_ID
        + ", token: "
        + twitch.TOKEN
        + ", subscriptions: [{type: channel.chat.message, condition: {user_id: '1'}}]}"
    )


async def serve_preset(
    preset: str, host: str, port: int, total: int, rate: float, refresh_every: float | None
) -> None:
    """Serve the emulator of ``preset`` and print how to point a stream at it."""
    emulator, session = _build(preset, host, port, total, rate, refresh_every)
    try:
        await emulator.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    base = f"{host}:{emulator.port}"
    api = {"slack": "/api", "twitch": "/helix", "discord": "/api/v10"}[preset]
    api = f"http://{base}{api}"
    click.echo(f"longline provider ({preset}) listening on http://{base}")
    click.echo("  session: " + session % {"api": api, "ws": f"ws://{base}/ws"})
    try:
        await stopping.wait()
    finally:
        await emulator.stop()
