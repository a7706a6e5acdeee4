"""The worker scenario's auditor: who committed what (by epoch), what a live connection
required, and that a stale commit or a hole is reported (an audit that cannot fail proves
nothing)."""

from __future__ import annotations

from longline.testing.faultproxy import ConnectionRecord
from longline.testing.provider_feeds import FeedClock
from reliability.workers import Stored, commits_after_resume, late_commits, required_live

CLOCK = FeedClock(rate=100.0, start=0.0)  # event N is published at N/100 s
OWNERS = {1: "A-1", 2: "B-2", 3: "C-3"}


def ev(seq: int, i: int, epoch: int, at: float) -> Stored:
    return Stored(seq, i, epoch, at, True)


def test_a_connection_requires_up_to_what_its_worker_committed_of_it() -> None:
    # A's connection from 1 s to 10 s (killed); A committed ids 131..500, received by 5 s.
    evs = [ev(n, n, 1, n / 100 + 0.01) for n in range(131, 501)]
    rec = ConnectionRecord(opened=1.0, first_byte=1.0, closed=10.0)
    assert required_live(CLOCK, [(rec, "A-1")], evs, OWNERS.get) == set(range(131, 501))
    # B-2's connection over the same span committed nothing: nothing required of it.
    assert required_live(CLOCK, [(rec, "B-2")], evs, OWNERS.get) == set()


def test_a_frozen_workers_dropped_reads_are_not_required_but_a_hole_before_is() -> None:
    # B froze at 3 s with its connection open until 8 s; it had committed ids 131..290, but
    # 200..210 are missing: a hole while its connection was up. What it read after SIGCONT
    # (fencing dropped it) is not required: its last commit bounds the connection.
    evs = [ev(n, n, 2, n / 100) for n in range(131, 291) if not 200 <= n <= 210]
    rec = ConnectionRecord(opened=1.0, first_byte=1.0, closed=8.0)
    need = required_live(CLOCK, [(rec, "B-2")], evs, OWNERS.get)
    assert max(need) == 290
    assert need - {e.id for e in evs} == set(range(200, 211))


def test_a_stale_commit_after_sigcont_is_counted() -> None:
    # B (epoch 2) frozen at 3 s, resumed at 9 s; C took epoch 3 and committed from 5 s.
    evs = [ev(1, 100, 2, 2.0), ev(2, 500, 3, 5.0), ev(3, 501, 3, 5.1)]
    assert commits_after_resume(evs, lost=2, resumed=9.0) == 0
    evs.append(ev(4, 502, 2, 9.2))  # read by B after SIGCONT and committed: a fencing breach
    assert commits_after_resume(evs, lost=2, resumed=9.0) == 1
    # Before its successor went live an old owner may still commit (make-before-break).
    early = [ev(1, 100, 2, 2.0), ev(2, 101, 2, 9.1), ev(3, 500, 3, 9.5)]
    assert commits_after_resume(early, lost=2, resumed=9.0) == 0


def test_late_commits_are_those_after_a_newer_epochs_first_event() -> None:
    evs = [ev(1, 1, 1, 1.0), ev(2, 2, 2, 2.0), ev(3, 3, 1, 2.5), ev(4, 4, 2, 3.0)]
    got = late_commits(evs)
    assert [(round(t, 2), e.seq, top) for t, e, top in got] == [(0.5, 3, 2)]
    assert late_commits([ev(1, 1, 1, 1.0), ev(2, 2, 2, 2.0)]) == []
