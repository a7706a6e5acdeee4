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
    assert r.decide(112.1) is Action.WAIT  # committed, but no overlap seen yet
    r.on_overlap()
    assert r.decide(112.1) is Action.CLOSE_PREDECESSOR
    r.on_opened(112.1)
    assert r.next_deadline() == 122.1


def test_a_handed_over_successor_rotates_by_its_own_age() -> None:
    """A slow commit: the predecessor is cut by the provider 0.5 s into the overlap, so the
    successor takes over then; it must rotate 1 s after it was opened, not 1 s after that
    handover, which would be when the provider cuts it too (1.5 s after it opened)."""
    r = Rotation(1.0)
    r.on_opened(0.0)
    assert r.decide(1.0) is Action.OPEN_SUCCESSOR
    r.on_successor_connected(1.05)
    r.on_handed_over(1.5)
    assert r.next_deadline() == 2.0
    assert r.decide(2.0) is Action.OPEN_SUCCESSOR
    r.on_successor_connected(2.02)
    r.on_successor_committed()
    r.on_overlap()
    assert r.decide(2.05) is Action.CLOSE_PREDECESSOR
    r.on_handed_over(2.05)
    assert r.next_deadline() == 3.0


def test_a_lagging_predecessor_is_kept_until_the_connections_overlap() -> None:
    """A live feed: the successor starts at the provider's present and commits at once, while
    the busy predecessor still has older events in its socket. Closing it then would lose
    them: it goes when one of them delivers an event the other stored (a duplicate), or when
    the bounded overlap has passed."""
    r = Rotation(10.0, max_overlap=5.0)
    r.on_opened(0.0)
    assert r.decide(10.0) is Action.OPEN_SUCCESSOR
    r.on_successor_connected(10.1)
    r.on_successor_committed()
    assert r.decide(12.0) is Action.WAIT
    assert r.decide(15.1) is Action.CLOSE_PREDECESSOR  # never overlapped: bounded
    r.on_successor_failed(15.1, retry_in=1.0)
    assert not r.overlapped and not r.successor_committed


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


def test_invocation_chains_at_margin_then_stops_when_successor_live() -> None:
    from longline.core.handoff import InvocationPlan, Step

    p = InvocationPlan(margin=5.0, flush_reserve=1.0, max_overlap=3.0, chains=True)
    assert p.decide(0.0, 20.0, False, False) is Step.CONTINUE
    assert p.decide(15.0, 5.0, False, False) is Step.START_SUCCESSOR
    assert p.decide(15.1, 4.9, False, False) is Step.CONTINUE  # started once only
    assert p.decide(16.0, 4.0, True, False) is Step.CONTINUE  # superseded, successor not live
    assert p.decide(16.5, 3.5, True, True) is Step.STOP


def test_superseded_invocation_stops_after_bounded_overlap() -> None:
    from longline.core.handoff import InvocationPlan, Step

    p = InvocationPlan(margin=5.0, flush_reserve=1.0, max_overlap=3.0, chains=False)
    assert p.decide(2.0, 18.0, True, False) is Step.CONTINUE
    assert p.decide(4.9, 15.1, True, False) is Step.CONTINUE
    assert p.decide(5.0, 15.0, True, False) is Step.STOP


def test_step_functions_mode_never_chains_and_flush_reserve_wins() -> None:
    from longline.core.handoff import InvocationPlan, Step

    p = InvocationPlan(margin=5.0, flush_reserve=1.0, max_overlap=3.0, chains=False)
    assert p.decide(15.0, 5.0, False, False) is Step.CONTINUE
    assert p.decide(19.0, 1.0, False, False) is Step.STOP
