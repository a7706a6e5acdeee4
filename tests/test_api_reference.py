"""The API reference builds from the docstrings with warnings as errors, and covers the API."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts/api_reference.py")
assert spec is not None and spec.loader is not None
api_reference = importlib.util.module_from_spec(spec)
sys.modules["api_reference"] = api_reference
spec.loader.exec_module(api_reference)


def test_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    result = api_reference.build(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    expected = {m.replace(".", "/") + ".html" for m in api_reference.MODULES}
    assert expected <= pages
    top = (tmp_path / "longline.html").read_text("utf-8")
    for name in ("App", "Event", "add_stream", "stop_stream", "events"):
        assert name in top or name in (tmp_path / "longline/api.html").read_text("utf-8")


def test_the_reference_covers_what_plugin_authors_use() -> None:
    """The registries a kind registers with and the conformance suites it runs are public."""
    kinds = ("stores", "transports", "processors", "sessions")
    needed = {
        "longline.plugins",
        *(f"longline.{k}.registry" for k in kinds),
        "longline.stores.base",
        "longline.transports.base",
        "longline.processors.base",
        "longline.sessions.base",
        "longline.testing.conformance.processors",
        "longline.testing.conformance.stores",
        "longline.testing.conformance.transports",
    }
    assert needed <= set(api_reference.MODULES)
