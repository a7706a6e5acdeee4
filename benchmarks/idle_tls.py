"""Idle ``wss://`` streams: memory per stream through longline and with bare aiohttp, with
asyncio's stock 256 KiB TLS read buffer and with longline's 32 KiB one.

``python -m benchmarks.idle_tls --streams 3000``: makes a private CA (``longline.testing.tls``),
runs the local provider over TLS in its own process, and ``benchmarks.idle`` once per variant
in a fresh process each; prints one JSON line per variant and a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.provider import ProviderProcess
from longline.testing.tls import make_ca
from longline.transports.tls import TLS_READ_BUFFER

STOCK = 256 * 1024
VARIANTS = (
    ("longline, 16 KiB buffer", [], TLS_READ_BUFFER),
    ("longline, stock 256 KiB", [], STOCK),
    ("longline, 4 KiB buffer", [], 4096),
    ("bare aiohttp, 16 KiB buffer", ["--raw"], TLS_READ_BUFFER),
    ("bare aiohttp, stock 256 KiB", ["--raw"], STOCK),
)


def run(streams: int, timeout: float, only: str | None) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(Path(tmp))
        for name, extra, buffer in VARIANTS:
            if only and only not in name:
                continue
            with ProviderProcess(str(ca.server_cert), str(ca.server_key)) as provider:
                cmd = [sys.executable, "-m", "benchmarks.idle", "--port", str(provider.port)]
                cmd += ["--streams", str(streams), "--timeout", str(timeout)]
                cmd += ["--ca", str(ca.ca_file), "--tls-buffer", str(buffer), *extra]
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{done.stderr[-2000:]}")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            figures["variant"] = name
            print(json.dumps(figures), flush=True)
            out.append(figures)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--only", default=None, help="run the variants whose name has this")
    args = parser.parse_args()
    rows = run(args.streams, args.timeout, args.only)
    print(f"\n{'variant':<30} {'streams':>8} {'connected':>10} {'connect s':>10} {'KB/stream':>10}")
    for r in rows:
        print(
            f"{r['variant']:<30} {r['streams']:>8} {r['connected']:>10} "
            f"{r['connect_s'] or 0:>10.1f} {r['kb_per_stream']:>10.1f}"
        )


if __name__ == "__main__":
    main()
