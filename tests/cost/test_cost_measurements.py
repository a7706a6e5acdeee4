"""``longline cost`` sized by measurements: the results file, the flags, the documented figures.

A t4g.nano has 512 MiB; less 200 MiB for the OS and the measured process it holds
``floor(remaining / memory per stream)`` streams, and carries ``0.1 vCPU / CPU per event``
events a second (2 vCPUs at a 5 % baseline). The expected figures are that arithmetic.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from longline import cost
from longline.cli.cost import cost_command
from longline.cost.capacity import figures
from longline.cost.context import Ctx
from longline.cost.options import server_fit

REPO = Path(__file__).parents[2]
MIB = 2**20


def results(**details: Any) -> dict[str, Any]:
    """A benchmarks results document holding only what the cost model reads."""
    return {"started": "2026-12-01T00:00:00+00:00", "details": details}


def median(x: float) -> dict[str, Any]:
    return {"runs": [x, x, x], "median": x, "min": x, "max": x}


# 20 KiB per idle ws stream, a 50 MiB process, 10 µs per ws event and 8 µs per sse event
RESULTS = results(
    **{
        "idle.ws": {"kb_per_stream": median(20.0), "rss_start_kb": median(51200)},
        "cpu.durable.ws": {"us_per_event": median(10.0)},
        "cpu.durable.sse": {"us_per_event": median(8.0)},
    }
)
# (512 - 200 - 50) MiB = 268,288 KiB / 20 KiB = 13,414.4 streams; 0.1 / 10 µs = 10,000 events/s
NANO_STREAMS, NANO_EVENTS = 13_414, 10_000


@pytest.fixture(autouse=True)
def _away_from_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def measured(tmp_path: Path) -> Path:
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(RESULTS))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cost_command, list(args), env={"COLUMNS": "400"})


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.output)
    return doc


def nano(doc: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in doc["option3"] if s["shape"] == "t4g.nano")


def option(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(o for o in doc["options"] if o["key"] == key)


NANO_ARGS = ("--instance-type", "t4g.nano", "--region", "us-east-1")


def test_instances_and_price_per_thousand_connection_months_from_the_file(
    measured: Path,
) -> None:
    doc = run_json("--measurements", str(measured), *NANO_ARGS, "--streams", "20000")
    assert doc["sizing"]["memory_per_stream"] == "20480"
    assert doc["sizing"]["process_memory"] == str(50 * MIB)
    assert doc["sizing"]["cpu_per_event"] == "0.00001"
    assert doc["sizing"]["text"] == (
        f"sizing: 20 KiB per stream, 50 MiB per process, 10 µs of CPU per event; from "
        f"{measured}, run 2026-12-01T00:00:00+00:00: medians of idle.ws and cpu.durable.ws"
    )
    row = nano(doc)
    assert (row["streams_each"], row["events_per_second_each"]) == (NANO_STREAMS, "10000")
    assert (row["by_memory"], row["by_cpu"], row["needed"], row["binding"]) == (2, 1, 2, "memory")
    three = option(doc, "ec2_hybrid")
    compute = three["items"][0]
    assert compute["label"] == (
        "2 x t4g.nano (13,414 streams / 10,000 events/s each, memory binds; measured)"
    )
    assert compute["quantity"] == "1440"
    # 1 event/s of 500 B on 20,000 streams: every line exactly, then the total per 1,000
    # connection-months (20,000 streams x 1 month)
    expected = D("6.048") + D("1.28") + D("7.2")  # 1,440 h x $0.0042, 16 GB-month, 1,440 h
    events = D(2_592_000)
    expected += events * 2 * 2 * D("0.000000625")  # event and key items, 2 WRU each
    expected += events * 2 * D("0.000000625")  # 1 event per transaction: one part each
    expected += D(700) * events / 2 / 2**30 * D("0.25")  # (500 + 100 + 100 B) mean held
    expected += events / 100 * D("0.1") * 128 / 1024 * D("0.0000133334")  # processor GB-s
    expected += events / 100 * D("0.0000002")
    assert D(three["total"]) == expected
    assert D(three["per_1000_connection_months"]) == expected * 1000 / 20_000
    assert D(row["total"]) == expected
    assert D(row["per_1000_connection_months"]) == expected / 20


def test_binding_constraint_switches_from_memory_to_cpu_as_events_grow(measured: Path) -> None:
    seen = []
    for eps in ("0", "10000", "20000", "20001", "40000"):
        doc = run_json(
            "--measurements", str(measured), *NANO_ARGS, "--streams", "20000",
            "--events-per-second", eps,
        )  # fmt: skip
        row = nano(doc)
        seen.append((eps, row["by_memory"], row["by_cpu"], row["needed"], row["binding"]))
        assert option(doc, "ec2_hybrid")["items"][0]["quantity"] == str(row["needed"] * 720)
    assert seen == [
        ("0", 2, 0, 2, "memory"),
        ("10000", 2, 1, 2, "memory"),
        ("20000", 2, 2, 2, "memory"),  # a tie: memory still asks for as many
        ("20001", 2, 3, 3, "CPU"),  # 20,001 x 10 µs = 0.20001 vCPU-s/s over 0.1 each
        ("40000", 2, 4, 4, "CPU"),
    ]


def test_an_idle_workload_still_needs_one_instance() -> None:
    # with nothing to carry an instance is still one: the model's floor
    w = cost.Workload(instance_type="t4g.nano", events_per_second=D(0), streams=1)
    size = server_fit(Ctx(w, cost.load_prices()), "t4g.nano")
    assert (size.by_memory, size.by_cpu, size.count, size.binding) == (1, 0, 1, "memory")


def test_flags_alone_need_no_file(tmp_path: Path) -> None:
    doc = run_json(
        *NANO_ARGS, "--streams", "30000", "--memory-per-stream", "22KB",
        "--process-memory", "50MiB", "--cpu-per-event", "9us",
    )  # fmt: skip
    assert doc["sizing"]["text"] == (
        "sizing: 21.4844 KiB per stream [--memory-per-stream], 50 MiB per process "
        "[--process-memory], 9 µs of CPU per event [--cpu-per-event]"
    )
    row = nano(doc)
    # 262 MiB = 274,726,912 B / 22,000 B = 12,487.6 streams; 0.1 / 9 µs = 11,111.1 events/s
    assert (row["streams_each"], row["events_per_second_each"]) == (
        12_487,
        "11111.11111111111111111111111",
    )
    assert (row["needed"], row["binding"]) == (3, "memory")  # 30,000 / 12,487 -> 3


def test_a_flag_overrides_one_figure_of_the_file(measured: Path) -> None:
    doc = run_json("--measurements", str(measured), *NANO_ARGS, "--cpu-per-event", "20µs")
    assert doc["sizing"]["cpu_per_event"] == "0.00002"
    assert doc["sizing"]["memory_per_stream"] == "20480"
    assert "20 µs of CPU per event [--cpu-per-event]; from " in doc["sizing"]["text"]
    assert nano(doc)["events_per_second_each"] == "5000"


def test_transport_takes_its_cpu_and_ws_memory_when_its_idle_figure_is_missing(
    measured: Path,
) -> None:
    doc = run_json("--measurements", str(measured), "--transport", "sse", *NANO_ARGS)
    assert doc["sizing"]["cpu_per_event"] == "0.000008"
    assert doc["sizing"]["memory_per_stream"] == "20480"
    assert doc["sizing"]["text"].endswith(
        "medians of idle.ws and cpu.durable.sse; idle memory of sse not in it: ws's"
    )
    assert nano(doc)["events_per_second_each"] == "12500"


def test_default_file_in_the_working_directory_is_used(tmp_path: Path) -> None:
    default = tmp_path / "benchmarks" / "results" / "latest.json"
    default.parent.mkdir(parents=True)
    default.write_text(json.dumps(RESULTS))
    doc = run_json(*NANO_ARGS)
    assert doc["sizing"]["text"].endswith(
        f"from {Path('benchmarks/results/latest.json')}, run 2026-12-01T00:00:00+00:00: "
        "medians of idle.ws and cpu.durable.ws"
    )
    assert nano(doc)["streams_each"] == NANO_STREAMS


def test_without_a_file_the_documented_figures_are_used_and_said() -> None:
    result = run(*NANO_ARGS)
    assert result.exit_code == 0, result.output
    assert (
        "sizing: 22.3136 KiB per stream, 52.2305 MiB per process, 6.22165 µs of CPU per event; "
        "from documented figures of the 2026-11-26 benchmarks; benchmarks/results/latest.json "
        "not found\n"
    ) in result.output
    assert "Option 3 by shape: what one holds, and 1 stream(s) at 1 events/s" in result.output
    assert "per 1,000 connection-months" in result.output
    doc = run_json(*NANO_ARGS)
    # (512 - 200) MiB - 53,484 KiB = 266,004 KiB / 22.3136 KiB = 11,921.1 streams
    assert nano(doc)["streams_each"] == 11_921


def test_documented_figures_are_in_the_docs() -> None:
    docs = (REPO / "docs" / "cost.md").read_text("utf-8")
    for transport, (kib, process_kib, us) in cost.measurements.DOCUMENTED.items():
        assert f"| {transport} | {kib} KiB | {process_kib:,} KiB | {us} µs |" in docs


def test_the_repositorys_results_file_is_readable() -> None:
    m = cost.load_measurements(REPO / "benchmarks" / "results" / "latest.json")
    assert m.memory_per_stream > 0 and m.process_memory > 0 and m.cpu_per_event > 0
    assert m.source.endswith("medians of idle.ws and cpu.durable.ws")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("{not json", "{path} is not JSON: "),
        ("[1, 2]", "{path} has no 'details' (a python -m benchmarks file?)"),
        (
            json.dumps(results(**{"idle.ws": RESULTS["details"]["idle.ws"]})),
            "{path} lacks a positive median for cpu.durable.ws.us_per_event",
        ),
        (
            json.dumps(
                results(
                    **{
                        "idle.ws": {"kb_per_stream": median(0.0), "rss_start_kb": median(1)},
                        "cpu.durable.ws": {"us_per_event": median(1.0)},
                    }
                )
            ),
            "{path} lacks a positive median for idle.ws.kb_per_stream",
        ),
    ],
)
def test_missing_or_invalid_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    result = run("--measurements", str(path))
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "Error: Invalid value for '--measurements': " + message.format(path=path)
    )
    assert "Traceback" not in result.output


def test_an_invalid_default_file_names_its_path(tmp_path: Path) -> None:
    default = tmp_path / "benchmarks" / "results" / "latest.json"
    default.parent.mkdir(parents=True)
    default.write_text("{}")
    result = run()
    assert result.exit_code == 2
    assert (
        "Error: Invalid value for '--measurements': benchmarks/results/latest.json has no 'details'"
    ) in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-per-stream", "0"], "--memory-per-stream must be > 0, got 0"),
        (["--cpu-per-event", "0us"], "--cpu-per-event must be > 0, got 0"),
        # A negative is refused by the duration type, as every duration option refuses it.
        (["--cpu-per-event", "-1us"], "Invalid value for '--cpu-per-event': negative duration"),
        (["--cpu-per-event", "fast"], "Invalid value for '--cpu-per-event'"),
    ],
)
def test_bad_figures_name_the_flag(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_model_without_measurements_keeps_the_placeholders() -> None:
    c = Ctx(cost.Workload(), cost.load_prices())
    f = figures(c)
    assert (f.memory_per_stream, f.process_memory, f.cpu_per_event) == (
        2 * MIB,
        80 * MIB,
        D("0.0002"),
    )
    assert not f.measured


def test_plot_carries_the_sizing_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    svg = tmp_path / "cost.svg"
    result = run("--cpu-per-event", "9us", "--plot", str(svg))
    assert result.exit_code == 0, result.output
    assert "sizing: 22.3136 KiB per stream" in svg.read_text()  # in a comment: "--" is escaped
    assert "9 µs of CPU per event" in svg.read_text()
