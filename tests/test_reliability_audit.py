"""The reliability campaign's auditor: which live events were required, and that a hole in
them is reported (the campaign would be worthless if its audit could not fail)."""

from __future__ import annotations

from longline.testing.faultproxy import ConnectionRecord
from longline.testing.provider_feeds import FeedClock
from reliability.audit import Session, required_ids
from reliability.report import Row, table
from reliability.sinks import Sample, audit_sink, backlog, drained_at

CLOCK = FeedClock(rate=100.0, start=0.0)  # event N is published at N/100 s


def test_a_connection_up_until_the_process_ended_requires_up_to_what_was_stored() -> None:
    rec = ConnectionRecord(opened=1.0, first_byte=1.0, closed=10.0)
    need = required_ids(CLOCK, [rec], [Session(0.0, 10.0, {"s": 900})], "s")
    assert need == set(range(131, 901))  # from first byte + 0.3 s to the last stored id


def test_a_faulted_connection_requires_nothing_from_just_before_the_fault() -> None:
    rec = ConnectionRecord(opened=1.0, first_byte=1.0, impaired=5.0, closed=5.2)
    need = required_ids(CLOCK, [rec], [Session(0.0, 10.0, {"s": 900})], "s")
    assert need == set(range(131, 451))  # until 0.5 s before the fault


def test_overlapping_connections_cover_the_union_and_gaps_between_are_not_required() -> None:
    recs = [
        ConnectionRecord(opened=1.0, first_byte=1.0, closed=3.0),  # clean close (rotation)
        ConnectionRecord(opened=2.5, first_byte=2.5, closed=4.0),
        ConnectionRecord(opened=6.0, first_byte=6.0, closed=9.0),
    ]
    need = required_ids(CLOCK, recs, [Session(0.0, 9.0, {"s": 880})], "s")
    assert need == set(range(131, 391)) | set(range(631, 881))


def test_a_row_with_a_loss_fails_and_says_so() -> None:
    assert Row("x", "1 fault", produced=10, stored=10).ok
    bad = Row("y", "1 fault", produced=10, stored=9, lost=1)
    assert not bad.ok
    assert "| y | 1 fault | 10 | 9 | 1 | 0 | 0 | - | 0 s | FAIL: loss/duplicate |" in table([bad])


def test_a_series_that_grows_after_the_warm_up_is_not_flat() -> None:
    from reliability.resources import Series

    leak = Series([(float(t), 20.0 + t) for t in range(100)])  # one more fd a second
    base, top, ok = leak.flat(0.2, 6)
    assert (base, top, ok) == (42.0, 119.0, False)
    steady = Series([(float(t), 5.0 + t if t < 10 else 17.0 + t % 3) for t in range(100)])
    assert steady.flat(0.2, 6) == (19.0, 19.0, True)  # the warm-up's climb does not count


def test_the_sink_audit_counts_missing_out_of_order_redelivered_and_wrong_payloads() -> None:
    stored = {"a": [10, 11, 12, 13], "b": [1, 2]}  # per stream: the payload id of seq 1, 2, ...
    got = {
        "a": [(1, 10), (2, 11), (1, 10), (4, 13), (3, 12)],  # a repeat; seq 3 after seq 4
        "b": [(1, 1), (2, 99)],  # seq 2 arrived with another event's payload
    }
    f = audit_sink(got, stored)
    assert (f.delivered, f.redelivered, f.missing, f.out_of_order, f.corrupted) == (6, 1, 0, 1, 1)
    f = audit_sink({"a": [(1, 10), (3, 12)]}, stored)
    assert (f.delivered, f.missing, f.out_of_order) == (2, 4, 0)
    assert f.notes == [
        "a: 2 never delivered (first: [2, 4])",
        "b: 2 never delivered (first: [1, 2])",
    ]


def test_drained_waits_for_what_was_stored_when_the_sink_came_back() -> None:
    samples = [
        Sample(1.0, {"a": 100}, {"redis": {"a": 10}}, {}),
        Sample(2.0, {"a": 150}, {"redis": {"a": 99}}, {}),
        Sample(3.0, {"a": 160}, {"redis": {"a": 150}}, {}),
    ]
    assert drained_at(samples, "redis", 1.5) == 3.0  # caught up with the 150 stored at 2.0
    assert drained_at(samples, "redis", 3.5) is None
    assert backlog(samples[0], "redis") == 90
