"""The reliability campaign, CI-sized, one family per test (``python -m reliability --only``).

Each family runs in its own ``python -m reliability`` process with its own provider, audits
every event it caused and scans its own outputs for the canary secrets; a row that lost,
doubled or corrupted an event, leaked or failed makes the process exit 1, and the test prints
its table. They are the longest tests: ``tests/conftest.py`` spreads them through the run.
The full campaign (``--full``) is not a test: its figures are in docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliability.__main__ import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.reliability
@pytest.mark.timeout(900)
@pytest.mark.parametrize("family", list(SCENARIOS))
def test_campaign_family_loses_doubles_and_leaks_nothing(family: str) -> None:
    scan = [] if family == "fuzz" else ["secrets"]  # fuzzing writes nothing to scan
    proc = subprocess.run(
        [sys.executable, "-m", "reliability", "--only", family, *scan],
        cwd=ROOT, capture_output=True, text=True, timeout=880, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    assert "| pass |" in proc.stdout, proc.stdout
