"""A refused connection says why: the status and the head of the body, secrets redacted."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from longline.core.secrets import set_secrets
from longline.engine.runner import Runner
from longline.ops.logging import setup_logging
from longline.transports.http import body_head, printable
from tests.conftest import capture_until, make_config

TOKEN = "tok-7f3a9c-very-secret"
# Providers explain a refusal in the body, sometimes echoing what they refused.
BODY = (
    '{"title":"Unauthorized","detail":"token ' + TOKEN + ' is expired",'
    '"type":"about:blank"}\n' + "x" * 300
)


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    set_secrets(())


# The token crosses the 200-byte cut (bytes 190-212): cut first, its start would be printed.
ACROSS = "x" * 190 + TOKEN + " is expired " + "y" * 300


@pytest.fixture
async def refusing(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A loopback server answering every GET 401 with ``BODY`` (or the test's ``body`` param)."""
    body = getattr(request, "param", BODY)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=401, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/feed", handler)  # SSE, lines, and the WebSocket handshake alike
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/feed"
    finally:
        await runner.cleanup()


async def refused_until_failed(
    refusing: str, tmp_path: Path, transport: str
) -> tuple[Runner, io.StringIO]:
    """Run stream ``a`` (sending the token) against the refusing server until it fails; the
    runner and what was logged at INFO."""
    cfg = make_config(
        tmp_path / "r.db",
        {
            "name": "a",
            "transport": transport,
            "url": refusing.replace("http", "ws") if transport == "ws" else refusing,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "backoff": {"initial": "10ms", "max": "20ms"},
        },
    )
    out = io.StringIO()
    setup_logging("INFO", secrets=cfg.secrets, stream=out)
    runner = await capture_until(cfg, lambda r: r.stats["a"].state == "failed")
    return runner, out


@pytest.mark.parametrize("transport", ["sse", "lines", "ws"])
async def test_a_401_logs_status_and_redacted_body_head(
    refusing: str, tmp_path: Path, transport: str
) -> None:
    runner, out = await refused_until_failed(refusing, tmp_path, transport)
    # The first 200 bytes of the body, on one line, the echoed token replaced.
    head = BODY[:200].replace("\n", " ").replace(TOKEN, "***").rstrip() + " ..."
    assert BODY.index(TOKEN) + len(TOKEN) < 200
    why = f"HTTP 401 Unauthorized: {head}"
    lines = out.getvalue().splitlines()
    ended = [ln for ln in lines if "connection ended" in ln]
    assert len(ended) == 2
    assert all(f"stream a: connection ended ({why}); reconnecting in" in ln for ln in ended)
    assert any(ln.endswith(f"stream a: giving up: {why} (3 attempts)") for ln in lines)
    assert runner.stats["a"].reason == f"{why} (3 attempts)"
    assert TOKEN not in out.getvalue()


@pytest.mark.parametrize("refusing", [ACROSS], indirect=True, ids=["across"])
@pytest.mark.parametrize("transport", ["sse", "lines", "ws"])
async def test_a_token_crossing_the_cut_is_redacted_whole(
    refusing: str, tmp_path: Path, transport: str
) -> None:
    """Redacted before it is cut: the token is replaced whole, not printed up to byte 200."""
    runner, out = await refused_until_failed(refusing, tmp_path, transport)
    why = "HTTP 401 Unauthorized: " + "x" * 190 + "*** ..."
    assert runner.stats["a"].reason == f"{why} (3 attempts)"
    assert any(
        ln.endswith(f"stream a: giving up: {why} (3 attempts)")
        for ln in out.getvalue().splitlines()
    )
    assert "tok-" not in out.getvalue()


@pytest.mark.parametrize("refusing", [ACROSS], indirect=True, ids=["across"])
async def test_body_head_reads_past_the_cut_by_the_longest_secret(refusing: str) -> None:
    """``body_head`` as the aiohttp WebSocket path (through a proxy) uses it."""
    set_secrets([TOKEN, "short"])
    async with aiohttp.ClientSession() as session, session.get(refusing) as resp:
        head = await body_head(resp.content)
    assert head == "x" * 190 + "*** ..."


async def test_a_body_of_exactly_the_head_is_not_marked_cut() -> None:
    """ " ..." only when more followed (it used to be added to a 200-byte body too)."""
    assert printable(b"a" * 200) == "a" * 200
    assert printable(b"a" * 201) == "a" * 200 + " ..."
    set_secrets(["s3cr3t"])
    assert printable(b"a" * 197 + b"s3cr3t" + b"b") == "a" * 197 + "*** ..."
    assert printable(b"a" * 197 + b"s3cr3t") == "a" * 197 + "***"
