"""The reliability page: figures kept per family, so a partial ``--full --only`` run replaces
its own rows and keeps the others' (with the command and commit that produced each)."""

from __future__ import annotations

from pathlib import Path

from reliability.report import FamilyRun, Row, load_runs, render, save_runs


def _run(rows: list[Row], command: str) -> FamilyRun:
    return FamilyRun(rows, command, "abc1234", "2026-12-04 10:00 UTC", 1.5, "test machine", True)


def test_figures_round_trip_and_a_partial_run_replaces_only_its_family(tmp_path: Path) -> None:
    path = tmp_path / "reliability.json"
    kills = Row("kills row", "3 SIGKILL", produced=10, stored=10, notes=["a note"])
    save_runs(path, {"kills": _run([kills], "python -m reliability --full"),
                     "fuzz": _run([Row("fuzz row", "5 inputs")], "python -m reliability --full")})
    recorded = load_runs(path)
    assert recorded["kills"].rows == [kills]
    lost = Row("fuzz row", "9 inputs", lost=2)
    recorded.update({"fuzz": _run([lost], "python -m reliability --full --only fuzz")})
    page = render(recorded, ["kills", "fuzz"], "INTRO")
    assert page.index("| kills row |") < page.index("| fuzz row | 9 inputs |")
    assert "5 inputs" not in page and "SOME ROWS FAIL" in page
    assert "- fuzz: `python -m reliability --full --only fuzz`, commit `abc1234`" in page
    assert "- a note" in page
