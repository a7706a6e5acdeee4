"""After the other scenarios: look for the canary secrets everywhere longline writes or prints.

Every scenario ran with the canaries in headers, URL credentials, query tokens, subscribe
messages (and processor credentials where processors ran). Scanned: every `longline run` log,
`status` (text and JSON), `events` and `events --quarantined` of every stream, `deadletters`,
`check`, the `deploy` templates generated from each config, and the raw store files (SQLite).
"""

from __future__ import annotations

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
    for cfg in sorted(work.glob("*.yaml")):
        data = yaml.safe_load(cfg.read_text())
        sqlite = str(data.get("store", "")).startswith("sqlite")
        commands: list[list[str]] = [["check", str(cfg)]]
        if sqlite and Path(str(data["store"]).removeprefix("sqlite:///")).exists():
            commands += [["status", str(cfg)], ["status", str(cfg), "--json"],
                         ["deadletters", str(cfg)]]
            for s in data.get("streams", []):
                commands += [["events", str(cfg), "--stream", s["name"], "--limit", "50"],
                             ["events", str(cfg), "--stream", s["name"], "--quarantined"]]
        commands += [["deploy", "--option", o, "--config", str(cfg)] for o in "1234"]
        for argv in commands:
            _, out = await cli(*argv)
            hits(out, f"`longline {' '.join(argv[:1])}` on {cfg.name}", found)
            outputs += 1
    row = Row("secrets: canaries in every output", "")
    row.injected = (
        f"{len(CANARIES)} canaries (headers, URL password, query token, subscribe message, "
        f"processor header); {outputs} outputs scanned"
    )
    row.failures += found
    row.duration_s = time.monotonic() - t0
    return row
