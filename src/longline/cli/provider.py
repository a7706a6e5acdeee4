"""``longline provider``: the local event provider (``longline.testing.provider``) as a
command, serving until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import ssl

import click

from longline.cli.options import DURATION
from longline.testing.emulators import PRESETS, serve_preset
from longline.testing.provider import Provider, ProviderError

__all__ = ["provider_command"]


async def _serve_until_signal(
    host: str, port: int, cert: str | None = None, key: str | None = None
) -> None:
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    provider = Provider(host, port, ssl_context=context)
    try:
        await provider.start()
    except ProviderError as exc:
        raise click.ClickException(str(exc)) from None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if context else "http"
    click.echo(f"longline provider listening on {scheme}://{shown}:{provider.port}")
    try:
        await stopping.wait()
    finally:
        await provider.stop()


@click.command("provider")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default=None,
    help="Emulate a provider's session protocol instead (docs/sessions.md).",
)
@click.option("--total", default=1000, show_default=True, help="--preset: events to send.")
@click.option("--rate", default=50.0, show_default=True, help="--preset: events per second.")
@click.option(
    "--refresh-every",
    default=None,
    type=DURATION,
    help="--preset: ask each connection to reconnect after this long (30, 30s, 5m).",
)
@click.option("--cert", default=None, help="Serve https:// and wss:// with this PEM certificate.")
@click.option("--key", default=None, help="With --cert: its PEM key (if not in the cert file).")
def provider_command(
    host: str,
    port: int,
    preset: str | None,
    total: int,
    rate: float,
    refresh_every: float | None,
    cert: str | None,
    key: str | None,
) -> None:
    """Run the local event provider with fault injection until SIGINT or SIGTERM."""
    if preset is not None:
        asyncio.run(serve_preset(preset, host, port, total, rate, refresh_every))
        return
    asyncio.run(_serve_until_signal(host, port, cert, key))
