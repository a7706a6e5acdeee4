"""The cost model against hand-computed Decimal figures, the seed figure by figure, its refusals.

Expected values are written out as the arithmetic from the us-east-1 / ap-southeast-2 list
prices in prices.toml (a price change there must fail these tests on purpose).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from importlib import resources
from pathlib import Path

import pytest

from longline import cost
from longline.core.model import Event
from longline.cost import CostError, LineItem, OptionCost, Workload, compare
from longline.cost.options import stream_steps
from longline.stores.dynamodb import items as di

BOOK = cost.load_prices()
T = D(2_592_000)  # seconds in 30 days
GIB = D(2**30)

# us-east-1 list prices, as in prices.toml
GBS_X86, GBS_ARM, REQ = D("0.0000166667"), D("0.0000133334"), D("0.0000002")
WRU, RRU, SFN = D("0.000000625"), D("0.000000125"), D("0.000025")
NANO, EBS, IPV4 = D("0.0042"), D("0.08"), D("0.005")


def items(option: OptionCost) -> list[tuple[str, D, D]]:
    return [(i.category, i.quantity, i.cost) for i in option.items]


def by_label(option: OptionCost, start: str) -> LineItem:
    return next(i for i in option.items if i.label.startswith(start))


# A busy but small workload: 2 streams at 1 event/s each, 300 B events (+100 B = 1 KB item).
BUSY = Workload(
    region="us-east-1",
    streams=2,
    events_per_second=D(2),
    event_size=300,
    lambda_memory=128,
    arch="x86_64",
    handoff_interval=D(840),
    overlap=D(10),
    instance_type="t4g.nano",
)
CYCLES = 3086  # ceil(2_592_000 / 840)
EVENTS = D(5_184_000)  # 2/s x 30 days
DYNAMO = [
    ("store writes", EVENTS * 2, D("6.48")),  # 1 KB item, transactional: 2 WRU each
    # key item: 2 x 40 B key + 100 B = 180 B -> 1 KB, transactional: 2 WRU each;
    # 5 184 000 x 2 = 10 368 000 WRU x $0.000000625 = $6.48
    ("store writes", EVENTS * 2, D("6.48")),
    # stream item: 1 event/s per stream < 10 flushes/s -> 1 transaction of 1 event each, which is
    # 1 part (<= 49 events): 5 184 000 parts x 2 WRU = 10 368 000 WRU = $6.48, as before
    ("store writes", EVENTS * 2, D("6.48")),
    # (400 B + 100 B storage overhead) x 2/s x T / 2 mean bytes, in GiB, x $0.25
    ("storage", D(1_296_000_000) / GIB, D(1_296_000_000) / GIB * D("0.25")),
]
PROCESSOR = [  # 51 840 batches of 100 x 0.1 s x 0.125 GB = 648 GB-s
    ("processing", D(648), D(648) * GBS_X86),
    ("processing", D(51_840), D("0.010368")),
]


def test_lambda_seed_minimum_in_us_east_1_on_arm() -> None:
    w = replace(cost.seed_workload(), region="us-east-1", arch="arm64")
    option = compare(w, BOOK).option("lambda")
    assert items(option) == [
        ("compute", D(324_000), D("4.3200216")),  # 0.125 GB x 2 592 000 s
        ("requests", D(2880), D("0.000576")),  # one invocation per 900 s
        ("store writes", D(11_520), D("0.0072")),  # 2 lease writes x 2 WRU per handoff
        ("store reads", D(2880), D("0.00036")),  # checkpoint read per invocation
    ]
    assert option.total == D("4.3281576")


def test_lambda_option_line_by_line() -> None:
    option = compare(BUSY, BOOK).option("lambda")
    billed = 2 * (T + CYCLES * 10)  # two functions, 10 s overlap per handoff
    assert billed == D(5_245_720)
    assert items(option) == [
        ("compute", D(655_715), D("10.9286051905")),
        ("requests", D(6172), D("0.0012344")),
        ("store writes", D(24_688), D("0.01543")),
        ("store reads", D(6172), D("0.0007715")),
        *DYNAMO,
        *PROCESSOR,
    ]
    assert option.error is None and option.notes == ()


def test_step_functions_adds_transitions_and_continue_as_new() -> None:
    one, two = compare(BUSY, BOOK).option("lambda"), compare(BUSY, BOOK).option("lambda_sfn")
    orch = by_label(two, "state transitions")
    # per function: 3 086 cycles x 4 + ceil(3 086 / 1 000) = 4 executions x 2
    assert orch.quantity == 2 * (CYCLES * 4 + 4 * 2) == D(24_704)
    assert orch.cost == D("0.6176")
    assert two.total - one.total == D("0.6176")


def test_ec2_hybrid_line_by_line() -> None:
    option = compare(BUSY, BOOK).option("ec2_hybrid")
    assert items(option) == [
        ("compute", D(720), D("3.024")),
        ("storage", D(8), D("0.64")),
        ("network", D(720), D("3.6")),
        *DYNAMO,
        *PROCESSOR,
    ]


def test_ec2_all_processing_sizes_its_data_volume() -> None:
    option = compare(BUSY, BOOK).option("ec2_all")
    # 2/s x 400 B x T = 2 073 600 000 B = 1.93 GiB -> a 2 GB data volume next to the 8 GB root
    assert items(option) == [
        ("compute", D(720), D("3.024")),
        ("storage", D(10), D("0.8")),
        ("network", D(720), D("3.6")),
    ]
    assert option.total == D("7.424")


def test_fargate_variant_on_arm() -> None:
    w = replace(BUSY, arch="arm64")
    option = compare(w, BOOK).option("fargate_hybrid")
    assert items(option)[:3] == [
        ("compute", D(180), D("5.8284")),  # 0.25 vCPU x 720 h x $0.03238
        ("compute", D(360), D("1.2816")),  # 0.5 GB x 720 h x $0.00356
        ("network", D(720), D("3.6")),
    ]
    assert items(option)[-2] == ("processing", D(648), D("0.0086400432"))


def test_servers_scale_out_by_rate_and_by_streams() -> None:
    by_rate = compare(replace(BUSY, events_per_second=D(1001)), BOOK).option("ec2_hybrid")
    assert by_label(by_rate, "3 x t4g.nano").quantity == 3 * 720  # 500 events/s each
    by_streams = compare(replace(BUSY, streams=233), BOOK).option("ec2_hybrid")
    assert by_label(by_streams, "3 x t4g.nano").quantity == 3 * 720  # 116 streams each


def test_auto_picks_the_cheapest_instance_that_fits() -> None:
    w = replace(BUSY, instance_type="auto", events_per_second=D(1200))
    option = compare(w, BOOK).option("ec2_all")
    assert option.notes[0] == "--instance-type auto chose t4g.small, the cheapest that fits"
    assert by_label(option, "3 x t4g.small").cost == 3 * 720 * D("0.0168")


def test_batching_caps_stream_item_writes() -> None:
    def stream_items(eps: int) -> D:
        w = replace(BUSY, streams=1, events_per_second=D(eps))
        return by_label(compare(w, BOOK).option("lambda"), "stream-item writes").quantity

    assert stream_items(5) == 5 * T * 2  # below 10 flushes/s: one transaction per event
    assert stream_items(50) == 10 * T * 2  # one flush per 100 ms window, 5 events: one part
    # 700/s: one flush per window of 70 events, split into 2 parts (49 + 21): 20 parts/s
    assert stream_items(700) == 20 * T * 2
    # 1 980/s > 99 / 0.1 s: full batches of 99, 1 980 / 99 = 20 a second, each 3 parts
    # (49 + 49 + 1): 60 parts/s x 2 WRU (was 20 transactions/s before parts were counted)
    assert stream_items(1980) == 60 * T * 2


def test_standard_writes_cost_one_unit_per_kb() -> None:
    w = replace(BUSY, dynamodb_writes="standard", event_size=1500)  # 1 600 B -> 2 KB
    option = compare(w, BOOK).option("ec2_hybrid")
    assert by_label(option, "event writes").quantity == EVENTS * 2
    assert by_label(option, "key writes").quantity == EVENTS  # 180 B -> 1 KB x 1 WRU
    assert by_label(option, "stream-item writes").quantity == EVENTS  # 1 part per event x 1


def _store_units(batch: int) -> int:
    """WRU the DynamoDB store's own transactions spend on 1 000 events of 200 B, 40 B keys."""
    tables = {"events": "events", "keys": "keys", "streams": "streams"}
    events = [Event(f"key-{i:036d}", "x" * 200, f"c{i}", 0.0) for i in range(1000)]
    units, base = 0, 0
    for start in range(0, 1000, batch):  # the writer's batches
        pending = [(e, di.event_size("s", e)) for e in events[start : start + batch]]
        while pending:  # as DynamoDBStore.append splits a batch into parts
            part = di.take_part("s", pending)
            evs = [e for e, _ in part]
            units += di.transact_units(di.append_items(tables, "s", base, evs, "c", 0.0))
            base, pending = base + len(part), pending[len(part) :]
    return units


@pytest.mark.parametrize(
    ("batch", "parts", "per_1000"),
    # docs/stores.md measures 4,042 / 4,060 / 4,200 WRU per 1,000 ~200-byte events
    [(1000, 21, 4042), (100, 3, 4060), (10, 1, 4200)],
)
def test_store_writes_match_the_dynamodb_stores_own_count(
    batch: int, parts: int, per_1000: int
) -> None:
    # One transaction a second of `batch` events (window 1 s, at most `batch`), for one day.
    w = replace(
        BUSY,
        streams=1,
        events_per_second=D(batch),
        event_size=200,
        batch_window=D(1),
        batch_max=batch,
        days=D(1),
    )
    option = compare(w, BOOK).option("ec2_hybrid")
    writes = [i for i in option.items if i.category == "store writes"]
    events = D(batch) * 86_400
    # event item 200 + 100 B, key item 2 x 40 + 100 B: each 1 KB x 2 (transactional) = 4 WRU;
    # each transaction is ceil(batch / 49) parts writing the stream's item (2 WRU):
    # 1 000 -> 21, 100 -> 3, 10 -> 1
    assert [i.quantity for i in writes] == [events * 2, events * 2, D(86_400) * parts * 2]
    total = sum((i.quantity for i in writes), D(0))
    assert total / events * 1000 == per_1000 == 4000 + 1000 // batch * parts * 2
    assert _store_units(batch) == per_1000  # what the store itself counts


def test_key_size_sets_the_key_items_write_units() -> None:
    # 2 x 500 B key + 100 B = 1 100 B -> 2 KB x 2 WRU (transactional) = 4 WRU an event
    w = replace(BUSY, key_size=500)
    line = by_label(compare(w, BOOK).option("ec2_hybrid"), "key writes")
    assert (line.quantity, line.cost) == (EVENTS * 4, EVENTS * 4 * WRU)
    assert line.label == "key writes: 5,184,000 x 4 WRU (1,100 B uniqueness item)"
    # 2 x 204 750 B + 100 B = 409 600 B fits; one byte more per key does not
    assert compare(replace(BUSY, key_size=204_750), BOOK).option("lambda").error is None
    error = compare(replace(BUSY, key_size=204_751), BOOK).option("lambda").error
    assert error == (
        "a key item of 409,602 B (2 x --key-size + --item-overhead) exceeds DynamoDB's "
        "409,600 B item limit"
    )


def test_parts_step_along_streams_and_the_sweep_prices_every_step() -> None:
    # 4 950 events/s x 0.1 s = 495 events a window over all streams; batches of at most 99.
    w = replace(BUSY, events_per_second=D(4950), instance_type="t4g.small")

    def parts(streams: int) -> D:
        option = compare(replace(w, streams=streams), BOOK).option("ec2_hybrid")
        return by_label(option, "stream-item writes").quantity / 2

    # 123.75 a window > 99: full batches, 1 237.5 / 99 = 12.5 a second per stream, 3 parts each
    assert parts(4) == D("12.5") * 3 * 4 * T
    assert parts(5) == 10 * 3 * 5 * T  # 99 a window: one transaction a window, 49 + 49 + 1
    assert parts(6) == 10 * 2 * 6 * T  # 82.5 a window: 2 parts
    assert parts(10) == 10 * 2 * 10 * T  # 49.5 a window: still 2 parts
    assert parts(11) == 10 * 1 * 11 * T  # 45 a window: 1 part
    # where that happens: 495 / 99 = 5, 495 / 98 = 5.05, 495 / 49 = 10.1, 495 (1 a window)
    assert {5, 6, 10, 11, 495, 496} <= stream_steps(w, BOOK, 10_000)


def test_storage_mean_with_and_without_retention() -> None:
    w = replace(BUSY, streams=1, events_per_second=D(1), event_size=824)  # 1 024 B stored
    kept = by_label(compare(w, BOOK).option("ec2_hybrid"), "DynamoDB")
    assert kept.quantity == D(1024) * T / 2 / GIB == D("1.2359619140625")
    w = replace(w, retention_days=D(10))  # 1024 x (R - R^2 / 2T) = 1024 x 720 000
    kept = by_label(compare(w, BOOK).option("ec2_hybrid"), "DynamoDB")
    assert kept.quantity == D(737_280_000) / GIB == D("0.6866455078125")


def test_egress_is_priced_per_gb() -> None:
    w = replace(BUSY, egress_per_event=1024)
    line = by_label(compare(w, BOOK).option("ec2_all"), "data transfer out")
    assert (line.quantity, line.cost) == (EVENTS * 1024 / GIB, EVENTS * 1024 / GIB * D("0.09"))


def test_free_tier_credits_once_per_option_and_prorates() -> None:
    option = compare(replace(BUSY, free_tier=True), BOOK).option("lambda")
    credits = [(i.label, i.quantity, i.cost) for i in option.items if i.category == "free tier"]
    assert credits == [
        ("Lambda: 400,000 GB-s a month free", D(-400_000), D("-6.66668")),
        ("Lambda: 1,000,000 requests a month free", D(-58_012), D("-0.0116024")),
        ("DynamoDB storage: 25 GB a month free", -DYNAMO[-1][1], -DYNAMO[-1][2]),
    ]
    half = compare(replace(BUSY, free_tier=True, days=D(15)), BOOK).option("lambda")
    assert by_label(half, "Lambda: 400,000").quantity == D(-200_000)


def test_free_tier_credits_data_transfer_out() -> None:
    w = replace(BUSY, egress_per_event=1024, free_tier=True)
    option = compare(w, BOOK).option("ec2_all")
    gb = EVENTS * 1024 / GIB  # 4.94 GB, under the 100 GB a month
    assert items(option)[-2:] == [
        ("network", gb, gb * D("0.09")),
        ("free tier", -gb, -gb * D("0.09")),
    ]
    assert option.total == D("7.424")


def test_lambda_memory_follows_the_rate_and_has_a_ceiling() -> None:
    w = replace(BUSY, streams=1, events_per_second=D(1000))
    option = compare(w, BOOK).option("lambda")
    # 1 000 / 5 000 events per vCPU-second x 1 769 MB = 353.8 -> 354 MB
    assert by_label(option, "connection functions").label.startswith(
        "connection functions: 1 x 354 MB"
    )
    assert "raised from 128 to 354 MB" in option.notes[0]
    too_fast = compare(replace(w, events_per_second=D(30_000)), BOOK).option("lambda")
    assert too_fast.error is not None and "one stream cannot be split" in too_fast.error


def test_oversized_items_refuse_dynamodb_options_only() -> None:
    cmp = compare(replace(BUSY, event_size=409_600), BOOK)
    assert [o.key for o in cmp.options if o.error] == [
        "lambda",
        "lambda_sfn",
        "ec2_hybrid",
        "fargate_hybrid",
    ]
    assert str(cmp.option("lambda").error) == (
        "an item of 409,700 B (--event-size + --item-overhead) exceeds DynamoDB's 409,600 B "
        "item limit"
    )
    assert cmp.cheapest == ["ec2_all"]


def test_unknown_price_refuses_that_option_and_names_it() -> None:
    w = replace(BUSY, region="ap-southeast-2", arch="arm64")
    cmp = compare(w, BOOK)
    error = cmp.option("fargate_hybrid").error
    assert error is not None
    assert error.startswith("the price fargate.vcpu_hour[arm64] is not known for ap-southeast-2")
    assert [o.key for o in cmp.options if o.error] == ["fargate_hybrid"]


def test_uncertain_prices_are_flagged() -> None:
    notes = compare(replace(BUSY, region="ap-southeast-2"), BOOK).option("ec2_all").notes
    assert notes == ("ap-southeast-2 ec2 prices are marked uncertain in prices.toml",)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"events_per_second": D(-1)}, "events_per_second", "--events-per-second must be >= 0"),
        ({"region": "mars-1"}, "region", "unknown region 'mars-1' (--region)"),
        ({"instance_type": "t9.huge"}, "instance_type", "unknown instance type 't9.huge'"),
        ({"streams": 0}, "streams", "--streams must be at least 1"),
        ({"handoff_interval": D(895)}, "handoff_interval", "--handoff-interval plus --overlap"),
        ({"lambda_memory": 64}, "lambda_memory", "--lambda-memory must be 128..10,240 MB"),
        ({"arch": "sparc"}, "arch", "--arch must be one of x86_64, arm64"),
        ({"fargate_vcpu": D(3)}, "fargate_vcpu", "--fargate-vcpu must be one of"),
        ({"fargate_memory": D(4)}, "fargate_memory", "--fargate-memory must be 0.5..2 GB"),
        ({"batch_max": 0}, "batch_max", "--batch-max must be at least 1"),
        ({"key_size": -1}, "key_size", "--key-size must be >= 0"),
        ({"processor_batch": 0}, "processor_batch", "--processor-batch must be 1..10,000"),
        ({"cycles_per_execution": 3000}, "cycles_per_execution", "history under 25,000"),
        ({"days": D(0)}, "days", "--days must be > 0"),
        ({"dynamodb_writes": "eventual"}, "dynamodb_writes", "--dynamodb-writes must be"),
        ({"retention_days": D(0)}, "retention_days", "--retention-days must be > 0"),
    ],
)
def test_invalid_workloads_name_the_flag(
    change: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(CostError) as caught:
        compare(replace(BUSY, **change), BOOK)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert message in str(caught.value)


def test_explicit_instance_without_a_price_is_refused() -> None:
    w = replace(BUSY, region="ap-southeast-2", instance_type="c7g.large")
    with pytest.raises(CostError, match=r"^--instance-type c7g.large: the price ec2.hourly"):
        compare(w, BOOK)


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(CostError, match="--events-per-second must be a finite number"):
        Workload(events_per_second=D("NaN"))
    assert Workload(days=15).days == D(15)  # type: ignore[arg-type]


def test_price_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CostError, match="cannot read price file"):
        cost.load_prices(tmp_path / "missing.toml")
    empty = tmp_path / "empty.toml"
    empty.write_text("[meta]\n")
    with pytest.raises(CostError, match="defines no"):
        cost.load_prices(empty)


def test_a_price_file_can_leave_a_price_unknown(tmp_path: Path) -> None:
    text = resources.files("longline.cost").joinpath("prices.toml").read_text("utf-8")
    custom = tmp_path / "prices.toml"
    custom.write_text(
        text.replace("requests_per_million = 0.20", 'requests_per_million = "unknown"')
    )
    cmp = compare(BUSY, cost.load_prices(custom))
    assert [o.key for o in cmp.options if o.error] == [
        "lambda",
        "lambda_sfn",
        "ec2_hybrid",
        "fargate_hybrid",
    ]
    assert "lambda.requests_per_million is not known for us-east-1" in str(
        cmp.option("lambda").error
    )


def test_seed_figures_one_by_one() -> None:
    figures = {f.figure: f for f in cost.seed_figures(BOOK)}
    expected = [
        ("Lambda $/ms (128 MB x86_64)", "0.0000000021", "0.0000000020833375", "rounded"),
        ("Lambda, 30 days (duration)", "5.4432", "5.4000108", "differs"),
        ("Step Functions $ per 1,000 transitions", "0.025", "0.025", "same"),
        ("Step Functions $ per transition", "0.000025", "0.000025", "same"),
        ("state transitions in 30 days", "2880", "11526", "differs"),
        ("Step Functions, 30 days", "0.72", "0.28815", "differs"),
        # 5.4000108 + 0.000576 + 0.28815 + 11 520 WRU x $0.00000070675 + 2 880 RRU x $0.00000014135
        ("Lambda + Step Functions, 30 days", "6.1632", "5.697285648", "differs"),
        ("EC2 t4g.nano $/hour", "0.0042", "0.0053", "differs"),
        ("EC2 t4g.nano, 30 days (instance)", "3.024", "3.816", "differs"),
    ]
    for name, seed, ours, verdict in expected:
        figure = figures[name]
        assert (figure.seed, figure.ours, figure.verdict) == (D(seed), D(ours), verdict), name
    assert figures["EC2 for all processing, 30 days"].seed is None
    assert figures["EC2 for all processing, 30 days"].ours == D("8.184")
    assert len(figures) == 10


def test_seed_arithmetic_is_spelled_out() -> None:
    why = {f.figure: f.why for f in cost.seed_figures(BOOK)}
    assert D("0.0000000021") * 1000 * 3600 * 24 * 30 == D("5.4432")
    assert "= $5.4432, with the rounded per-ms price" in why["Lambda, 30 days (duration)"]
    assert "324,000 GB-s x $0.0000166667 = $5.4000108" in why["Lambda, 30 days (duration)"]
    assert why["Step Functions, 30 days"].startswith("2,880 x $0.000025 = $0.072, not $0.72")
    assert (
        "the floor only if a handoff takes a single transition"
        in (why["state transitions in 30 days"])
    )
    assert "the seed's $0.0042 is the us-east-1 price" in why["EC2 t4g.nano $/hour"]
    ec2 = why["EC2 t4g.nano, 30 days (instance)"]
    assert "$0.0042 x 720 h = $3.024" in ec2
    assert "8 x $0.096 = $0.768" in ec2 and "720 x $0.005 = $3.6" in ec2
    assert ec2.endswith("option 3 in all: $8.184")


def test_seed_scenario_cheapest_is_lambda_once_the_address_and_disk_count() -> None:
    cmp = compare(cost.seed_workload(), BOOK)
    assert cmp.cheapest == ["lambda"]
    without = compare(replace(cost.seed_workload(), public_ipv4=False), BOOK)
    assert without.cheapest == ["ec2_hybrid", "ec2_all"]  # $3.816 + $0.768, a tie
    assert without.option("ec2_hybrid").total == D("4.584")


def test_crossovers_along_streams() -> None:
    w = replace(cost.seed_workload(), region="us-east-1", arch="arm64")
    found = cost.crossovers(w, BOOK, "streams")
    # one Lambda chain costs $4.3281576; one t4g.nano set-up $7.264 holds 116 streams;
    # one 0.25 vCPU Fargate task ($10.71) holds 216.
    assert [(x.at, x.after) for x in found[:3]] == [
        (D(2), ("ec2_hybrid", "ec2_all")),
        (D(117), ("fargate_hybrid",)),
        (D(217), ("ec2_hybrid", "ec2_all")),
    ]
    assert found[0].before == ("lambda",)


def test_crossover_along_events_is_where_the_totals_meet() -> None:
    w = replace(cost.seed_workload(), region="us-east-1", arch="arm64", instance_type="t4g.nano")
    found, text = cost.in_words(w, BOOK, "events_per_second")
    first = found[0]
    assert (first.before, first.after) == (("lambda",), ("ec2_all",))
    # Lambda: $4.3281576 + eps x (9.72 writes + 0.2112 storage + 0.0095 processing) per 30 days,
    # the writes being 2 WRU event + 2 WRU key + 2 WRU stream item (1 part per event below
    # 10 events/s) per event; EC2 all: $7.264 + one 1 GB data volume ($0.08)
    slope = T * 6 * WRU + D(700) * T / 2 / GIB * D("0.25") + T / 100 * (D("0.0125") * GBS_ARM + REQ)
    assert abs(first.at - (D("7.344") - D("4.3281576")) / slope) < D("1e-9")
    assert round(first.at, 4) == D("0.3034")  # 3.0158424 / 9.9406...; 0.45 before key writes
    assert text == (
        "Cheapest by events/s, with 1 stream(s):\n"
        "  0.01 to 0.303 events/s     1. Lambda (self-chained handoffs)\n"
        "  0.303 to 100,000 events/s  4. EC2 does all processing"
    )


def test_sweep_marks_unpriced_points() -> None:
    values = [D(1), D(40_000)]
    totals = cost.sweep(replace(BUSY, streams=1), BOOK, "events_per_second", values)
    assert list(totals) == list(cost.OPTIONS)
    assert totals["lambda"][0] is not None and totals["lambda"][1] is None  # > 10 240 MB
    assert totals["ec2_all"][1] is not None


def test_axis_grids() -> None:
    eps = cost.axis_grid("events_per_second")
    assert (eps[0], eps[20], eps[-1], len(eps)) == (D("0.01"), D("0.1"), D(100_000), 141)
    streams = cost.axis_grid("streams")
    assert streams[:6] == [D(1), D(2), D(3), D(4), D(5), D(6)] and streams[-1] == D(10_000)


def test_a_zero_quantity_needs_no_price(tmp_path: Path) -> None:
    text = resources.files("longline.cost").joinpath("prices.toml").read_text("utf-8")
    custom = tmp_path / "prices.toml"
    custom.write_text(text.replace("out_per_gb = 0.09", 'out_per_gb = "unknown"'))
    book = cost.load_prices(custom)
    assert compare(BUSY, book).option("ec2_all").error is None  # no egress, no price needed
    refused = compare(replace(BUSY, egress_per_event=10), book).option("ec2_all").error
    assert refused is not None and "transfer.out_per_gb is not known for us-east-1" in refused
