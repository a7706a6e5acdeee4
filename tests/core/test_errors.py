"""Classifying how a connection ended, and the retry policy built on it."""

from __future__ import annotations

import random

import pytest

from longline.core.backoff import Backoff
from longline.core.errors import Cause, Decision, Outcome, RetryPolicy, classify_status


class Ceiling(random.Random):
    """Always draws the top of the range: delays equal the backoff ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def policy(max_permanent: int = 3) -> RetryPolicy:
    return RetryPolicy(Backoff(1.0, 8.0, Ceiling()), max_permanent=max_permanent)


@pytest.mark.parametrize(
    ("status", "retry_after", "cause"),
    [
        (429, None, Cause.RATE_LIMITED),
        (429, 30.0, Cause.RATE_LIMITED),
        (503, 5.0, Cause.RATE_LIMITED),
        (503, 0.0, Cause.RATE_LIMITED),
        (503, None, Cause.HTTP_5XX),
        (500, None, Cause.HTTP_5XX),
        (502, 10.0, Cause.HTTP_5XX),
        (504, None, Cause.HTTP_5XX),
        (599, None, Cause.HTTP_5XX),
        (408, None, Cause.HTTP_5XX),
        (425, None, Cause.HTTP_5XX),
        (400, None, Cause.PERMANENT),
        (401, None, Cause.PERMANENT),
        (403, None, Cause.PERMANENT),
        (404, None, Cause.PERMANENT),
        (410, None, Cause.PERMANENT),
        (418, 3.0, Cause.PERMANENT),
        (499, None, Cause.PERMANENT),
        (200, None, Cause.PERMANENT),
        (204, None, Cause.PERMANENT),
        (301, None, Cause.PERMANENT),
        (600, None, Cause.PERMANENT),
    ],
)
def test_classify_status(status: int, retry_after: float | None, cause: Cause) -> None:
    assert classify_status(status, retry_after) is cause


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        (Outcome(Cause.PERMANENT, 401), "HTTP 401 Unauthorized"),
        (Outcome(Cause.HTTP_5XX, 503, None, "body"), "HTTP 503 Service Unavailable"),
        (Outcome(Cause.PERMANENT, 499), "HTTP 499"),
        (Outcome(Cause.NETWORK), "network error"),
        (Outcome(Cause.NETWORK, detail="connection refused"), "network error: connection refused"),
        (Outcome(Cause.STALL, detail="no byte for 30 s"), "stalled: no byte for 30 s"),
        (Outcome(Cause.CLOSED_BY_PEER), "closed by peer"),
        (Outcome(Cause.TOO_BIG), "message too big"),
        (Outcome(Cause.RATE_LIMITED), "rate limited"),
    ],
)
def test_outcome_describe(outcome: Outcome, text: str) -> None:
    assert outcome.describe() == text


def test_outcome_is_frozen() -> None:
    outcome = Outcome(Cause.NETWORK)
    assert (outcome.status, outcome.retry_after, outcome.detail) == (None, None, "")
    with pytest.raises(AttributeError):
        outcome.cause = Cause.STALL  # type: ignore[misc]


@pytest.mark.parametrize(
    "cause", [Cause.NETWORK, Cause.HTTP_5XX, Cause.STALL, Cause.CLOSED_BY_PEER, Cause.TOO_BIG]
)
def test_transient_causes_back_off_exponentially(cause: Cause) -> None:
    p = policy()
    delays = [p.decide(Outcome(cause), was_live=False).delay for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_transient_decision_text() -> None:
    assert policy().decide(Outcome(Cause.HTTP_5XX, 502), was_live=False) == Decision(
        False, 1.0, "HTTP 502 Bad Gateway; retrying in 1.00 s"
    )
    assert policy().decide(Outcome(Cause.NETWORK, detail="reset"), was_live=False) == Decision(
        False, 1.0, "network error: reset; retrying in 1.00 s"
    )


def test_permanent_stops_after_max_consecutive_refusals() -> None:
    p = policy()
    refused = Outcome(Cause.PERMANENT, 401)
    assert p.decide(refused, was_live=False) == Decision(
        False, 1.0, "HTTP 401 Unauthorized; retrying in 1.00 s"
    )
    assert p.consecutive_permanent == 1
    assert p.decide(refused, was_live=False) == Decision(
        False, 2.0, "HTTP 401 Unauthorized; retrying in 2.00 s"
    )
    assert p.decide(refused, was_live=False) == Decision(
        True, 0.0, "HTTP 401 Unauthorized (3 attempts)"
    )
    assert p.consecutive_permanent == 3


def test_permanent_stop_reason_names_the_status_only() -> None:
    p = policy(max_permanent=1)
    decision = p.decide(Outcome(Cause.PERMANENT, 403, None, "HTTP 403 Forbidden"), was_live=False)
    assert decision == Decision(True, 0.0, "HTTP 403 Forbidden (1 attempt)")


def test_permanent_without_status() -> None:
    p = policy(max_permanent=1)
    decision = p.decide(Outcome(Cause.PERMANENT, None, None, "ws close 1008"), was_live=False)
    assert decision == Decision(True, 0.0, "refused: ws close 1008 (1 attempt)")


def test_other_outcome_breaks_the_permanent_run() -> None:
    p = policy()
    refused = Outcome(Cause.PERMANENT, 404)
    assert p.decide(refused, was_live=False).stop is False
    assert p.decide(refused, was_live=False).stop is False
    assert p.decide(Outcome(Cause.NETWORK), was_live=False).stop is False
    assert p.consecutive_permanent == 0
    assert p.decide(refused, was_live=False).stop is False
    assert p.decide(refused, was_live=False).stop is False
    assert p.decide(refused, was_live=False).stop is True


def test_rate_limited_waits_at_least_retry_after() -> None:
    p = policy()
    limited = Outcome(Cause.RATE_LIMITED, 429, 60.0)
    assert p.decide(limited, was_live=False) == Decision(
        False, 60.0, "HTTP 429 Too Many Requests; retrying in 60.00 s"
    )
    assert p.decide(Outcome(Cause.RATE_LIMITED, 429, 0.5), was_live=False).delay == 2.0


def test_rate_limited_without_retry_after_uses_backoff() -> None:
    p = policy()
    assert [p.decide(Outcome(Cause.RATE_LIMITED, 429), False).delay for _ in range(3)] == [
        1.0,
        2.0,
        4.0,
    ]


def test_rate_limited_extends_backoff_each_time() -> None:
    p = policy()
    delays = [p.decide(Outcome(Cause.RATE_LIMITED, 503, 3.0), False).delay for _ in range(5)]
    assert delays == [3.0, 3.0, 4.0, 8.0, 8.0]


def test_was_live_resets_backoff_and_permanent_count() -> None:
    p = policy()
    for _ in range(4):
        p.decide(Outcome(Cause.HTTP_5XX, 500), was_live=False)
    p.decide(Outcome(Cause.PERMANENT, 401), was_live=False)
    p.decide(Outcome(Cause.PERMANENT, 401), was_live=False)
    assert p.consecutive_permanent == 2
    dropped = p.decide(Outcome(Cause.CLOSED_BY_PEER), was_live=True)
    assert dropped == Decision(False, 1.0, "closed by peer; retrying in 1.00 s")
    assert p.consecutive_permanent == 0
    assert p.decide(Outcome(Cause.NETWORK), was_live=False).delay == 2.0


def test_was_live_then_permanent_counts_from_one() -> None:
    p = policy(max_permanent=2)
    assert p.decide(Outcome(Cause.PERMANENT, 401), was_live=False).stop is False
    assert p.decide(Outcome(Cause.PERMANENT, 401), was_live=True).stop is False
    assert p.decide(Outcome(Cause.PERMANENT, 401), was_live=False).stop is True


def test_live_drop_reconnects_at_once_with_real_jitter() -> None:
    p = RetryPolicy(Backoff(0.25, 320.0, random.Random(3)))
    for _ in range(10):
        p.decide(Outcome(Cause.HTTP_5XX, 500), was_live=False)
    assert 0.0 <= p.decide(Outcome(Cause.STALL), was_live=True).delay <= 0.25


def test_invalid_max_permanent() -> None:
    with pytest.raises(ValueError, match="max_permanent"):
        RetryPolicy(Backoff(1.0, 2.0), max_permanent=0)
