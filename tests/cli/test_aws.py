"""The AWS commands' own argument checks, which refuse before anything runs or is printed."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from longline.cli.aws import _parse_kill, deploy_command, lambda_sim_command


def test_kill_values_are_invocation_numbers_and_durations() -> None:
    assert _parse_kill(("3@2s", "10@1m30s", "1@250ms")) == {3: 2.0, 10: 90.0, 1: 0.25}


def test_a_bad_kill_value_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "longline.yaml"
    config.write_text("streams: []\n")
    for bad in ("3", "x@2s", "3@"):
        result = CliRunner().invoke(lambda_sim_command, [str(config), "--kill", bad])
        assert result.exit_code == 2, result.output
        assert f"--kill takes N@DURATION (e.g. 3@2s), not {bad!r}" in result.output


def test_deploy_refuses_a_bad_name_and_margin() -> None:
    result = CliRunner().invoke(deploy_command, ["--option", "1", "--name", "9bad"])
    assert result.exit_code == 2
    assert "--name: 3-32 characters: a letter, then letters, digits or -" in result.output
    result = CliRunner().invoke(deploy_command, ["--option", "2", "--margin", "451s"])
    assert result.exit_code == 2
    assert "must be between 1s and 450s" in result.output
