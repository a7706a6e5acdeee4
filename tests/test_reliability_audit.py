"""The reliability campaign's auditor: which live events were required, and that a hole in
them is reported (the campaign would be worthless if its audit could not fail)."""

from __future__ import annotations

from longline.testing.faultproxy import ConnectionRecord
from longline.testing.provider_feeds import FeedClock
from reliability.audit import Session, required_ids
from reliability.report import Row, table

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
