"""The example plugin package (``longline_example_plugin/``), installed for real in the test run.

``.ci/run`` installs it (``pip install -e tests/plugins/longline_example_plugin``). Elsewhere
(a developer's interpreter, a worktree on ``PYTHONPATH``) the session fixture builds and installs
it with pip into a temporary directory put on ``sys.path`` and ``PYTHONPATH``: a real
installation with its metadata and entry points, without touching site-packages.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from longline.processors.registry import REGISTRY as PROCESSORS
from longline.stores.registry import REGISTRY as STORES
from longline.transports.registry import REGISTRY as TRANSPORTS
from tests.services import service_missing

PLUGIN_DIR = Path(__file__).parent / "longline_example_plugin"


def _installed() -> bool:
    return any(ep.name == "tcp-lines" for ep in entry_points(group="longline.transports"))


def _refresh() -> None:
    importlib.invalidate_caches()
    for registry in (TRANSPORTS, PROCESSORS, STORES):
        registry.refresh()


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The example plugin's kinds are registered (installed once per session if needed)."""
    if _installed():
        yield
        return
    target = tmp_path_factory.mktemp("plugin-site")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    cmd += ["--disable-pip-version-check", "--target", str(target), str(PLUGIN_DIR)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        service_missing(f"cannot install the example plugin: {done.stderr.strip()[-500:]}")
    old_env = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), old_env) if p)
    _refresh()
    assert _installed(), "the example plugin installed but its entry points are not visible"
    try:
        yield
    finally:
        sys.path.remove(str(target))
        if old_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_env
        _refresh()
