"""Build the API reference (HTML) from the docstrings of longline's public modules.

    python scripts/api_reference.py [OUT_DIR]      # default: site/api

Warnings are errors (a module that fails to import, a broken docstring reference), so CI's run
of this (``tests/test_api_reference.py``) fails on them. The modules are the public surface:
the Python API, the config, the interfaces a plugin implements, and the test helpers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = [
    "longline",
    "longline.api",
    "longline.config",
    "longline.plugins",
    "longline.stores",
    "longline.stores.base",
    "longline.stores.registry",
    "longline.stores.memory",
    "longline.transports.base",
    "longline.transports.registry",
    "longline.processors.base",
    "longline.processors.registry",
    "longline.sessions.base",
    "longline.sessions.registry",
    "longline.testing.pytest_plugin",
    "longline.testing.conformance.processors",
    "longline.testing.conformance.stores",
    "longline.testing.conformance.transports",
    "longline.testing.provider",
    "longline.testing.faultproxy",
]


def build(out: Path) -> subprocess.CompletedProcess[str]:
    """Run pdoc with every warning turned into an error; the result carries its output."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "pdoc", "-o", str(out), *MODULES],
        capture_output=True,
        text=True,
        check=False,
    )


if __name__ == "__main__":
    result = build(Path(sys.argv[1] if len(sys.argv) > 1 else "site/api"))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
