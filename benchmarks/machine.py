"""What the figures were measured on: CPU, cores, memory, versions."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _cpuinfo(field: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _mem_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def describe() -> dict[str, Any]:
    """A JSON-ready description of this machine and of the software under test."""
    return {
        "cpu": _cpuinfo("model name") or platform.processor() or "unknown",
        "cpu_mhz": _cpuinfo("cpu MHz"),
        "cores": os.cpu_count(),
        "memory_mb": _mem_total_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": version("aiohttp"),
        "orjson": version("orjson"),
        "longline": version("longline"),
    }
