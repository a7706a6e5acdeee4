"""TLS and proxies against real local servers: a provider serving https:// and wss:// with a
certificate from a private CA (``longline.testing.tls``), and a tiny CONNECT proxy.

Per stream, ``tls: {ca_file, cert_file, key_file, verify}``; for every stream, the standard
``HTTPS_PROXY`` / ``NO_PROXY`` variables (aiohttp's ``trust_env``)."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from longline.config import ConfigError
from longline.engine.runner import Runner
from longline.testing.provider import Provider
from longline.testing.tls import PrivateCA, make_ca
from longline.transports.tls import TLS_READ_BUFFER, fit_tls_read_buffer
from tests.conftest import capture_until, make_config, stored

TOTAL = 40
FEEDS = {"l": "lines", "s": "sse", "w": "ws"}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@contextlib.asynccontextmanager
async def serving(ca: PrivateCA, require_client_cert: bool = False) -> AsyncIterator[Provider]:
    provider = Provider(ssl_context=ca.server_context(require_client_cert))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


def streams(provider: Provider, tls: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for name, transport in FEEDS.items():
        s: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "key": "$.id",
            "url": provider.url(transport, name, total=TOTAL),
        }
        if tls is not None:
            s["tls"] = tls
        out.append(s)
    return out


def everything(r: Runner) -> bool:
    return all(st.events >= TOTAL for st in r.stats.values())


async def captured(tmp_path: Path, provider: Provider, tls: dict[str, Any] | None) -> None:
    cfg = make_config(tmp_path / "t.db", *streams(provider, tls))
    assert all(s.url.startswith(("https://", "wss://")) for s in cfg.streams)
    await capture_until(cfg, everything, timeout=30)
    for name in FEEDS:
        assert [i for i, _, _ in await stored(cfg, name)] == list(range(1, TOTAL + 1))


async def refused(tmp_path: Path, provider: Provider, tls: dict[str, Any] | None) -> list[str]:
    """Run briefly; the reasons the streams give (none captures anything)."""
    cfg = make_config(tmp_path / "r.db", *streams(provider, tls))
    runner = Runner(cfg)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(1.5)
    reasons = [str(st.reason) for st in runner.stats.values()]  # a clean stop clears them
    runner.stop()
    await task
    assert all(st.events == 0 for st in runner.stats.values())
    return reasons


async def test_a_private_ca(ca: PrivateCA, tmp_path: Path) -> None:
    async with serving(ca) as provider:
        await captured(tmp_path, provider, {"ca_file": str(ca.ca_file)})
    # A running Runner made asyncio's TLS connections read into one shared 16 KiB buffer, not
    # 256 KiB each (docs/benchmarks.md: 315.8 -> 51.4 KB per idle wss:// stream). The provider's
    # server side shares it too, on the same loop: every event above arrived intact through it.
    assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER == 16 * 1024


async def test_tls_connections_of_a_thread_share_one_read_buffer() -> None:
    fit_tls_read_buffer()
    fit_tls_read_buffer()  # idempotent: the constructor is wrapped once
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context()

    def protocol() -> asyncio.sslproto.SSLProtocol:
        return asyncio.sslproto.SSLProtocol(
            loop, asyncio.Protocol(), context, None, server_hostname="localhost"
        )

    a, b = protocol(), protocol()
    assert a._ssl_buffer is b._ssl_buffer  # type: ignore[attr-defined]
    assert len(a.get_buffer(-1)) == TLS_READ_BUFFER
    other: list[asyncio.sslproto.SSLProtocol] = []

    def in_another_thread() -> None:
        other_loop = asyncio.new_event_loop()
        try:
            other.append(
                asyncio.sslproto.SSLProtocol(
                    other_loop, asyncio.Protocol(), context, None, server_hostname="localhost"
                )
            )
        finally:
            other_loop.close()

    await asyncio.to_thread(in_another_thread)
    assert other[0]._ssl_buffer is not a._ssl_buffer  # type: ignore[attr-defined]


async def test_without_the_ca_the_certificate_is_refused(ca: PrivateCA, tmp_path: Path) -> None:
    async with serving(ca) as provider:
        reasons = await refused(tmp_path, provider, None)
    assert all("certificate verify failed" in r for r in reasons), reasons


async def test_verify_false(ca: PrivateCA, tmp_path: Path) -> None:
    async with serving(ca) as provider:
        await captured(tmp_path, provider, {"verify": False})


async def test_a_client_certificate(ca: PrivateCA, tmp_path: Path) -> None:
    tls = {"ca_file": str(ca.ca_file)}
    async with serving(ca, require_client_cert=True) as provider:
        reasons = await refused(tmp_path, provider, tls)
        assert all(r != "None" for r in reasons), reasons  # the handshake fails without one
        mine = {**tls, "cert_file": str(ca.client_cert), "key_file": str(ca.client_key)}
        (tmp_path / "with").mkdir()
        await captured(tmp_path / "with", provider, mine)


@pytest.mark.parametrize(
    ("tls", "error"),
    [
        ({"ca_file": "/nonexistent/ca.pem"}, "streams[0].tls.ca_file: no such file"),
        ({"key_file": "{key}"}, "streams[0].tls.key_file: needs cert_file"),
        ({"verify": "no"}, "streams[0].tls.verify"),
    ],
)
def test_bad_tls_settings_name_the_field(
    ca: PrivateCA, tmp_path: Path, tls: dict[str, Any], error: str
) -> None:
    tls = {k: v.format(key=ca.client_key) if isinstance(v, str) else v for k, v in tls.items()}
    with pytest.raises(ConfigError) as e:
        make_config(
            tmp_path / "x.db", {"name": "a", "transport": "sse", "url": "https://h/", "tls": tls}
        )
    assert error in str(e.value)


# -- proxies -----------------------------------------------------------------------------


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback that records every tunnel it opens."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    p = ConnectProxy()
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_https_proxy_from_the_environment(
    ca: PrivateCA, tmp_path: Path, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with serving(ca) as provider:
        await captured(tmp_path, provider, {"ca_file": str(ca.ca_file)})
        target = f"127.0.0.1:{provider.port}"
    assert len(proxy.tunnels) >= len(FEEDS) and set(proxy.tunnels) == {target}


async def test_no_proxy_bypasses_it(
    ca: PrivateCA, tmp_path: Path, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with serving(ca) as provider:
        await captured(tmp_path, provider, {"ca_file": str(ca.ca_file)})
    assert proxy.tunnels == []
