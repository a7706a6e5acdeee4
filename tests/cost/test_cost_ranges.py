"""The cheapest option over ranges of an axis: exact changes, merged flip-flops, the words.

The merge rules are checked on hand-made totals (``merge_ranges`` is pure); the seed's streams
axis, where EC2 and Fargate staircases trade places twenty times, is checked against the
totals of every stream count priced one by one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal as D
from importlib import resources
from pathlib import Path

from longline import cost
from longline.cost import CheapestRange, compare, merge_ranges

BOOK = cost.load_prices()
T = D(2_592_000)  # seconds in 30 days
GIB = D(2**30)
L, S, E, F, A = "lambda", "lambda_sfn", "ec2_hybrid", "fargate_hybrid", "ec2_all"


def totals(*rows: Mapping[str, int | None]) -> list[dict[str, D | None]]:
    return [{k: None if v is None else D(v) for k, v in row.items()} for row in rows]


def at(*values: int) -> list[D]:
    return [D(v) for v in values]


def test_flip_flops_within_tolerance_merge_into_one_range() -> None:
    rows = totals(
        {L: 1, E: 10, F: 10},
        {L: 1, E: 10, F: 10},
        {L: 500, E: 100, F: 103},
        {L: 500, E: 103, F: 100},
        {L: 500, E: 100, F: 102},
        {L: 500, E: 101, F: 100},
    )
    ranges = merge_ranges("streams", at(1, 2, 3, 4, 5, 6), rows, max_ranges=10)
    assert ranges == [
        CheapestRange("streams", D(1), D(2), (L,), D(0)),
        CheapestRange("streams", D(3), D(6), (E, F), D("0.03")),  # 103 / 100 - 1
    ]


def test_flip_flops_beyond_tolerance_stay_apart_while_few() -> None:
    rows = totals({E: 100, F: 110}, {E: 110, F: 100}, {E: 100, F: 110})
    ranges = merge_ranges("streams", at(1, 2, 3), rows)
    assert [(r.start, r.end, r.options, r.spread) for r in ranges] == [
        (D(1), D(1), (E,), D(0)),
        (D(2), D(2), (F,), D(0)),
        (D(3), D(3), (E,), D(0)),
    ]


def test_too_many_ranges_merge_where_the_spread_covers_least_of_the_axis() -> None:
    rows = totals(
        {L: 1, E: 10, F: 10},
        {L: 1000, E: 100, F: 150},  # 2..3: F 50 % dearer
        {L: 1000, E: 150, F: 100},  # 4..7: E 50 % dearer
        {L: 1000, E: 100, F: 110},  # 8..999: F 10 % dearer
        {L: 1000, E: 110, F: 100},  # 1000
    )
    ranges = merge_ranges("streams", at(1, 2, 4, 8, 1000), rows, max_ranges=3)
    # 50 % x ln(8 / 2) + 10 % x ln(1001 / 8) beats 50 % over 2..7 alone or 2..999
    assert ranges == [
        CheapestRange("streams", D(1), D(1), (L,), D(0)),
        CheapestRange("streams", D(2), D(7), (E, F), D("0.5")),
        CheapestRange("streams", D(8), D(1000), (E, F), D("0.1")),
    ]


def test_a_change_of_regime_is_never_merged_beyond_tolerance() -> None:
    keys = [L, S, E, F, A]
    rows = totals(*({k: 1 if k == key else 2 for k in keys} for key in keys))
    ranges = merge_ranges("events_per_second", at(1, 10, 100, 1000, 10000), rows)
    assert [(r.start, r.end, r.options) for r in ranges] == [
        (D(1), D(10), (L,)),
        (D(10), D(100), (S,)),
        (D(100), D(1000), (E,)),
        (D(1000), D(10000), (F,)),
        (D(10000), D(10000), (A,)),
    ]


def test_unpriced_points_make_their_own_range() -> None:
    rows = totals({L: 1, E: 2}, {L: None, E: None}, {L: 1, E: 2})
    ranges = merge_ranges("streams", at(1, 2, 3), rows)
    assert [(r.options, r.spread) for r in ranges] == [((L,), D(0)), ((), None), ((L,), D(0))]


def test_seed_streams_ranges_are_exact() -> None:
    ranges = cost.cheapest_ranges(cost.seed_workload(), BOOK, "streams")
    # one t4g.nano set-up $8.184 holds 116 streams, one 0.25 vCPU x86 Fargate task $14.256 216:
    # at 217 two tasks cost 28.512 against two instances' 16.368; at 649 four tasks 57.024
    # against six instances' 49.104.
    assert ranges == [
        CheapestRange("streams", D(1), D(1), (L,), D(0)),
        CheapestRange("streams", D(2), D(116), (E, A), D(0)),
        CheapestRange("streams", D(117), D(580), (E, F, A), D("28.512") / D("16.368") - 1),
        CheapestRange("streams", D(581), D(10_000), (E, F, A), D("57.024") / D("49.104") - 1),
    ]


def test_streams_changes_match_every_count_priced_one_by_one() -> None:
    w = cost.seed_workload()
    expected: list[tuple[int, tuple[str, ...]]] = []
    for n in range(1, 1501):
        cheapest = tuple(compare(replace(w, streams=n), BOOK).cheapest)
        if not expected or expected[-1][1] != cheapest:
            expected.append((n, cheapest))
    found = [(int(x.at), x.after) for x in cost.crossovers(w, BOOK, "streams") if x.at <= 1500]
    assert found == expected[1:]
    assert len(found) == 14  # a search between grid points alone missed 649, 697, 1 297, 1 393


def test_seed_words() -> None:
    words = {axis: cost.summary(cost.seed_workload(), BOOK, axis).text for axis in cost.AXES}
    # Sydney, x86: Lambda $5.409135648 + eps x slope against EC2 all $8.184 + a 1 GB data
    # volume ($0.096). Per event: 2 WRU event + 2 WRU key + 2 WRU stream item (one part per
    # event below 10 events/s) at $0.70675 per million, 700 B stored half the period at $0.285
    # per GB-month, 1/100 processor batch of 0.0125 GB-s plus a request. 0.379 before key writes.
    slope = T * 6 * D("0.00000070675") + D(700) * T / 2 / GIB * D("0.285")
    slope += T / 100 * (D("0.0125") * D("0.0000166667") + D("0.0000002"))
    at = (D("8.28") - D("5.409135648")) / slope
    assert round(at, 3) == D("0.255")
    found = cost.crossovers(cost.seed_workload(), BOOK, "events_per_second")
    assert abs(found[0].at - at) < D("1e-9")
    assert words["events_per_second"] == (
        "Cheapest by events/s, with 1 stream(s):\n"
        "  0.01 to 0.255 events/s     1. Lambda (self-chained handoffs)\n"
        "  0.255 to 100,000 events/s  4. EC2 does all processing"
    )
    assert words["streams"] == (
        "Cheapest by streams, with 0 events/s in total:\n"
        "  1 stream               1. Lambda (self-chained handoffs)\n"
        "  2 to 116 streams       3/4 (tied)\n"
        "  117 to 580 streams     3/3b/4 (within 75 %)\n"
        "  581 to 10,000 streams  3/3b/4 (within 17 %)\n"
        "  (a/b within N %: each is the cheapest somewhere in the range, none costs more than "
        "N % above the cheapest there)"
    )


def test_nothing_priced_says_so(tmp_path: Path) -> None:
    text = resources.files("longline.cost").joinpath("prices.toml").read_text("utf-8")
    east = text.index('[regions."us-east-1".ec2]')
    line = text.index("hourly = {", east)
    custom = tmp_path / "prices.toml"
    custom.write_text(text[:line] + "hourly = {}" + text[text.index("\n", line) :])
    w = replace(cost.Workload(), event_size=409_600)  # too big for DynamoDB; no EC2 price
    summary = cost.summary(w, cost.load_prices(custom), "streams")
    assert summary.text == "No option can be priced along streams."
    assert summary.crossovers == []
    assert [(r.start, r.end, r.options, r.spread) for r in summary.ranges] == [
        (D(1), D(10_000), (), None)
    ]
