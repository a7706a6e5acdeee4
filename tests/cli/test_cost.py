"""``longline cost`` through click: the seed comparison, flags, JSON, errors and the plot."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from longline.cli.cost import cost_command

# the price file's placeholder capacity as flags: the staircases the ranges tests are about
PLACEHOLDER = (
    "--memory-per-stream",
    "2MiB",
    "--process-memory",
    "80MiB",
    "--cpu-per-event",
    "200us",
)


@pytest.fixture(autouse=True)
def _away_from_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where no benchmarks/results/latest.json is: the documented figures, not the latest."""
    monkeypatch.chdir(tmp_path)


def run(*args: str) -> Result:
    return CliRunner().invoke(cost_command, list(args), env={"COLUMNS": "400"})


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def totals(doc: dict[str, Any]) -> dict[str, str | None]:
    return {o["key"]: o["total"] for o in doc["options"]}


def test_seed_prints_the_comparison_with_the_correction() -> None:
    result = run("--seed", *PLACEHOLDER)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ap-southeast-2 (Asia Pacific (Sydney)), 30 days: 1 stream(s), 0 events/s" in out
    assert "The seed's figures next to ours" in out
    assert "2,880 x $0.000025 = $0.072, not $0.72 (a factor of 10)" in out
    assert "the floor only if a handoff takes a single transition" in out
    assert "total <- cheapest" in out
    assert "11,526 transitions" in out
    # the streams axis in four ranges, not the twenty changes between EC2 and Fargate steps
    assert (
        "Cheapest by streams, with 0 events/s in total:\n"
        "  1 stream               1. Lambda (self-chained handoffs)\n"
        "  2 to 116 streams       3/4 (tied)\n"
        "  117 to 580 streams     3/3b/4 (within 75 %)\n"
        "  581 to 10,000 streams  3/3b/4 (within 17 %)\n"
        "  (a/b within N %: each is the cheapest somewhere in the range, none costs more than "
        "N % above the cheapest there)\n"
    ) in out
    assert "takes over" not in out


def test_seed_json_reproduces_the_figures() -> None:
    doc = run_json("--seed")
    seed = {f["figure"]: (f["seed"], f["ours"], f["verdict"]) for f in doc["seed"]}
    assert seed["Lambda, 30 days (duration)"] == ("5.4432", "5.4000108", "differs")
    assert seed["Step Functions, 30 days"] == ("0.72", "0.28815", "differs")
    assert seed["state transitions in 30 days"] == ("2880", "11526", "differs")
    assert seed["EC2 t4g.nano, 30 days (instance)"] == ("3.024", "3.816", "differs")
    assert seed["EC2 for all processing, 30 days"] == (None, "8.184", "no figure")
    assert totals(doc) == {
        "lambda": "5.409135648",
        "lambda_sfn": "5.697285648",
        "ec2_hybrid": "8.184",
        "fargate_hybrid": "14.256",
        "ec2_all": "8.184",
    }
    assert doc["cheapest"] == ["lambda"]
    assert doc["workload"]["region"] == "ap-southeast-2"
    assert doc["workload"]["handoff_interval"] == "900"


def test_flags_override_the_seed_scenario() -> None:
    doc = run_json("--seed", "--no-public-ipv4")
    assert doc["cheapest"] == ["ec2_hybrid", "ec2_all"]
    assert totals(doc)["ec2_hybrid"] == "4.584"  # 720 h x $0.0053 + 8 GB x $0.096


def test_line_items_carry_exact_arithmetic() -> None:
    doc = run_json("--region", "us-east-1", "--events-per-second", "0", "--arch", "x86_64")
    lam = next(o for o in doc["options"] if o["key"] == "lambda")
    compute = lam["items"][0]
    # 840 s handoffs + 10 s overlap: 2 592 000 + 3 086 x 10 s at 0.125 GB
    assert compute["quantity"] == "327857.5"
    assert compute["unit_price"] == "0.0000166667"
    assert compute["cost"] == "5.46430259525"  # 327 857.5 x 16.6667e-6
    assert compute["unit"] == "GB-s"


def test_units_in_sizes_and_durations() -> None:
    doc = run_json("--event-size", "2KiB", "--handoff-interval", "14m", "--overlap", "500ms")
    w = doc["workload"]
    assert (w["event_size"], w["handoff_interval"], w["overlap"]) == (2048, "840", "0.5")
    assert run_json("--event-size", "1.5KB")["workload"]["event_size"] == 1500


def test_free_tier_switch_adds_credits() -> None:
    doc = run_json("--free-tier")
    lam = next(o for o in doc["options"] if o["key"] == "lambda")
    credits = [i["label"] for i in lam["items"] if i["category"] == "free tier"]
    assert credits[:2] == [
        "Lambda: 400,000 GB-s a month free",
        "Lambda: 1,000,000 requests a month free",
    ]
    assert doc["workload"]["free_tier"] is True


def test_crossovers_in_words_and_json() -> None:
    result = run(
        "--region",
        "us-east-1",
        "--events-per-second",
        "0",
        "--instance-type",
        "t4g.nano",
        *PLACEHOLDER,
    )
    assert result.exit_code == 0, result.output
    # 2 x 0.25 vCPU Fargate tasks ($10.71 each) against 2 t4g.nano set-ups ($7.264): 48 %
    assert (
        "Cheapest by streams, with 0 events/s in total:\n"
        "  1 stream               1. Lambda (self-chained handoffs)\n"
        "  2 to 116 streams       3/4 (tied)\n"
        "  117 to 464 streams     3/3b/4 (within 48 %)\n"
        "  465 to 10,000 streams  3b. Fargate holds connections, serverless processing\n"
    ) in result.output
    doc = run_json("--region", "us-east-1", "--events-per-second", "0")
    points = doc["crossovers"]["streams"]["points"]
    assert points == [
        {"axis": "streams", "at": "2", "before": ["lambda"], "after": ["ec2_hybrid", "ec2_all"]}
    ]
    assert doc["crossovers"]["streams"]["ranges"] == [
        {"axis": "streams", "start": "1", "end": "1", "options": ["lambda"], "spread": "0"},
        {
            "axis": "streams",
            "start": "2",
            "end": "10000",
            "options": ["ec2_hybrid", "ec2_all"],
            "spread": "0",
        },
    ]
    assert doc["crossovers"]["streams"]["text"] == (
        "Cheapest by streams, with 0 events/s in total:\n"
        "  1 stream             1. Lambda (self-chained handoffs)\n"
        "  2 to 10,000 streams  3/4 (tied)"
    )


def test_unpriced_option_is_shown_with_its_reason() -> None:
    result = run("--region", "ap-southeast-2", "--arch", "arm64")
    assert result.exit_code == 0, result.output
    assert "not priced: the price fargate.vcpu_hour[arm64] is not known for ap-southeast-2" in (
        result.output
    )
    doc = run_json("--region", "ap-southeast-2", "--arch", "arm64")
    assert totals(doc)["fargate_hybrid"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events-per-second", "-1"], "--events-per-second must be >= 0, got -1"),
        (["--region", "mars-1"], "unknown region 'mars-1' (--region)"),
        (["--instance-type", "t9.huge"], "unknown instance type 't9.huge' (--instance-type)"),
        (["--streams", "0"], "--streams must be at least 1, got 0"),
        (["--handoff-interval", "15m", "--overlap", "1s"], "--handoff-interval plus --overlap"),
        (["--event-size", "3 parsecs"], "Invalid value for '--event-size'"),
        (["--days", "abc"], "Invalid value for '--days'"),
        (["--plot", "out.pdf"], "--plot must end in .png or .svg, got 'out.pdf'"),
    ],
)
def test_errors_name_the_flag(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_price_file_names_the_flag(tmp_path: Path) -> None:
    broken = tmp_path / "prices.toml"
    broken.write_text("this is = = not toml")
    result = run("--prices", str(broken))
    assert result.exit_code == 2
    assert "Invalid value for '--prices': cannot read price file" in result.output


def test_plot_writes_png_and_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "cost.png", tmp_path / "sub" / "cost.svg"
    assert run("--plot", str(png)).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = run("--seed", "--plot", str(svg))
    assert result.exit_code == 0, result.output
    assert f"wrote {svg}" in result.output
    text = svg.read_text()
    assert "<svg" in text and "streams" in text


def test_plot_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = run("--plot", str(tmp_path / "cost.png"))
    assert result.exit_code == 1
    assert "plotting needs matplotlib: install longline[plot]" in result.output
    assert not (tmp_path / "cost.png").exists()


def test_help_lists_the_defaults() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "[default: us-east-1]" in result.output
    assert "[default: 840s]" in result.output
    assert "--free-tier / --no-free-tier" in result.output


def test_every_flag_is_documented() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "cost.md").read_text("utf-8")
    # --log-level and --log-format: every command gets them from the group (operations.md).
    flags = [
        opt
        for p in cost_command.params
        for opt in p.opts
        if opt.startswith("--") and p.name not in ("log_level", "log_format")
    ]
    assert len(flags) > 25
    assert [f for f in flags if not re.search(rf"`[^`]*{re.escape(f)}(?![\w-])", docs)] == []
