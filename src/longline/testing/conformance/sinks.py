"""Test sinks for the conformance suite: a JSON-lines file fed by the ``python`` kind, the
``command`` kind (``python -m longline.testing.conformance.sinks PATH``) or any kind that
writes files, with a ``PATH.down`` switch that makes deliveries fail."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson

from longline.testing.conformance.processors import Delivered

__all__ = ["SINK_ENV", "append", "read", "to_file"]

SINK_ENV = "LONGLINE_CONFORMANCE_SINK"
"""The file ``to_file`` appends to (the ``python`` kind's target takes no settings)."""


def append(path: str, lines: list[bytes]) -> None:
    """Append lines and fsync, or raise while ``PATH.down`` exists."""
    if os.path.exists(path + ".down"):
        raise RuntimeError(f"{path}.down exists: the sink is down")
    with open(path, "ab+") as f:
        torn = f.tell() > 0 and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n"
        # A line torn by a crash mid-write is closed off; ``read`` skips it.
        f.write(b"\n" if torn else b"")
        f.write(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def to_file(events: list[dict[str, Any]]) -> None:
    """A ``python`` kind target: append the batch to ``$LONGLINE_CONFORMANCE_SINK``."""
    append(os.environ[SINK_ENV], [orjson.dumps(e) for e in events])


def read(path: Path) -> list[Delivered]:
    """What reached the file, in order: complete lines only (a write may be under way)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            e = orjson.loads(line)
        except orjson.JSONDecodeError:  # torn by a crash
            continue
        out.append(Delivered(e["stream"], e["seq"], e["key"]))
    return out


def main() -> int:
    """The ``command`` kind's program: NDJSON batch on stdin; exit 1 while the sink is down."""
    try:
        append(sys.argv[1], sys.stdin.buffer.read().splitlines())
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
