"""After the other scenarios: look for the canary secrets everywhere longline writes or prints.

Every scenario ran with the canaries in headers, URL credentials, query tokens and subscribe
messages; the sink scenario's processors with canaries as their credentials (Redis password,
NATS token, a webhook's signing secret and `Authorization` header, used while the sinks fail),
and the credentials scenario's (a webhook's bearer token, token header and HMAC secret, a Redis
password, a NATS token), with a webhook that echoes them into the errors that become dead
letters. Scanned: every `longline run` log and what the HTTP listeners served (`/metrics`,
`/api/status`, `/readyz`, the page), `status` (text and JSON), `events` and `events
--quarantined` of every stream, `deadletters`, `check`, the `deploy` templates generated from
the network scenario's config, and the raw SQLite files.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import yaml

from reliability.harness import CANARIES, cli
from reliability.report import Row


def needles() -> list[str]:
    out = list(CANARIES.values())
    pw = CANARIES["REL_CANARY_PASSWORD"]
    out.append(base64.b64encode(f"feeduser:{pw}".encode()).decode())  # Basic auth of the URL
    return out


def hits(text: str, where: str, found: list[str]) -> None:
    for n in needles():
        if n in text:
            found.append(f"{where}: contains {n[:8]}…")


async def scan(work: Path) -> Row:
    t0 = time.monotonic()
    found: list[str] = []
    outputs = 0
    for log in sorted(work.glob("*.log")):
        hits(log.read_text(errors="replace"), log.name, found)
        outputs += 1
    for db in sorted(work.glob("*.db")):
        hits(db.read_bytes().decode("latin-1"), db.name, found)
        outputs += 1
    commands: list[tuple[str, list[str]]] = []
    for cfg in sorted(work.glob("*.yaml")):
        data = yaml.safe_load(cfg.read_text())
        store = str(data.get("store", ""))
        commands.append((cfg.name, ["check", str(cfg)]))
        if store.startswith("sqlite") and Path(store.removeprefix("sqlite:///")).exists():
            for argv in (["status"], ["status", "--json"], ["deadletters"]):
                commands.append((cfg.name, [argv[0], str(cfg), *argv[1:]]))
            if cfg.stem in ("network", "kills-sqlite", "credentials"):  # the others alike
                for s in data.get("streams", []):
                    name = s["name"]
                    commands += [
                        (cfg.name, ["events", str(cfg), "--stream", name, "--limit", "50"]),
                        (cfg.name, ["events", str(cfg), "--stream", name, "--quarantined"]),
                    ]
        if cfg.stem == "network":
            commands += [(cfg.name, ["deploy", "--option", o, "--config", str(cfg)])
                         for o in "1234"]
    gate = asyncio.Semaphore(3)

    async def one(where: str, argv: list[str]) -> None:
        async with gate:
            _, out = await cli(*argv)
        hits(out, f"`longline {argv[0]}` on {where}", found)

    await asyncio.gather(*(one(w, a) for w, a in commands))
    outputs += len(commands)
    row = Row("secrets: canaries in every output", "")
    row.injected = (
        f"{len(CANARIES)} canaries (headers, URL password, query token, subscribe message; "
        f"processors: webhook token, header and secret, Redis password, NATS token); "
        f"{outputs} outputs scanned"
    )
    row.failures += found
    if not outputs:
        row.skipped = "nothing to scan: no scenario ran"
    row.duration_s = time.monotonic() - t0
    return row
