from longline.core.handoff import Action, Rotation


def test_never_rotates_without_lifetime() -> None:
    r = Rotation(None)
    r.on_opened(0.0)
    assert r.next_deadline() is None
    assert r.decide(1e9) is Action.WAIT


def test_make_before_break_waits_for_commit() -> None:
    r = Rotation(10.0, max_overlap=5.0, successor_timeout=3.0)
    r.on_opened(100.0)
    assert r.next_deadline() == 110.0
    assert r.decide(109.9) is Action.WAIT
    assert r.decide(110.0) is Action.OPEN_SUCCESSOR
    assert r.decide(110.5) is Action.WAIT  # successor not connected yet
    r.on_successor_connected(111.0)
    assert r.next_deadline() == 116.0
    assert r.decide(112.0) is Action.WAIT  # connected but nothing committed yet
    r.on_successor_committed()
    assert r.decide(112.1) is Action.CLOSE_PREDECESSOR
    r.on_opened(112.1)
    assert r.next_deadline() == 122.1


def test_quiet_successor_takes_over_after_bounded_overlap() -> None:
    r = Rotation(10.0, max_overlap=5.0)
    r.on_opened(0.0)
    assert r.decide(10.0) is Action.OPEN_SUCCESSOR
    r.on_successor_connected(11.0)
    assert r.decide(15.9) is Action.WAIT
    assert r.decide(16.0) is Action.CLOSE_PREDECESSOR


def test_successor_that_never_connects_is_abandoned_and_retried() -> None:
    r = Rotation(10.0, successor_timeout=3.0)
    r.on_opened(0.0)
    assert r.decide(10.0) is Action.OPEN_SUCCESSOR
    assert r.decide(12.9) is Action.WAIT
    assert r.decide(13.0) is Action.ABANDON_SUCCESSOR
    r.on_successor_failed(13.0, retry_in=2.0)
    assert r.next_deadline() == 15.0
    assert r.decide(14.0) is Action.WAIT
    assert r.decide(15.0) is Action.OPEN_SUCCESSOR
