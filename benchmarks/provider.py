"""Run the local provider in another process, so it never shares the GIL with what is measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import TracebackType
from urllib.parse import urlencode

_LISTENING = re.compile(r"listening on https?://[0-9.]+:(\d+)")


class ProviderProcess:
    """``with ProviderProcess() as p: p.url("ws", "feed", total=1000)``."""

    def __init__(
        self, cert: str | None = None, key: str | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self._tls = (
            [] if cert is None else ["--cert", cert] + ([] if key is None else ["--key", key])
        )
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._feeds = 0

    def __enter__(self) -> ProviderProcess:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.serve",
                "--host",
                self.host,
                "--port",
                "0",
                *self._tls,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            self._proc.kill()
            raise RuntimeError(f"the provider did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the provider process has used so far (Linux)."""
        if self._proc is None:
            return 0.0
        try:
            with open(f"/proc/{self._proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fresh_feed(self, prefix: str) -> str:
        """A feed name not used before in this process (each run gets its own clock)."""
        self._feeds += 1
        return f"{prefix}{self._feeds}"

    def url(self, transport: str, feed: str, **params: object) -> str:
        """The URL of ``feed`` over ``transport`` (same scheme as ``Provider.url``)."""
        scheme = "ws" if transport == "ws" else "http"
        query = urlencode({k: str(v) for k, v in params.items()})
        base = f"{scheme}://{self.host}:{self.port}/{transport}/{feed}"
        return f"{base}?{query}" if query else base
