"""Full-jitter backoff and Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longline.core.backoff import Backoff, parse_retry_after


class Ceiling(random.Random):
    """Always draws the top of the range, so delays equal the ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceilings_double_up_to_maximum() -> None:
    backoff = Backoff(0.5, 5.0, Ceiling())
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff.attempt == 7


def test_delays_are_uniform_below_the_ceiling() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(7))
    twin = random.Random(7)
    expected = [twin.uniform(0.0, min(30.0, 2.0**n)) for n in range(8)]
    assert [backoff.next_delay() for _ in range(8)] == expected


def test_ceiling_attempt_and_reset() -> None:
    backoff = Backoff(0.25, 16.0, Ceiling())
    assert backoff.attempt == 0
    assert backoff.ceiling() == 0.25
    backoff.next_delay()
    backoff.next_delay()
    assert backoff.attempt == 2
    assert backoff.ceiling() == 1.0
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.ceiling() == 0.25
    assert backoff.next_delay() == 0.25


def test_many_attempts_do_not_overflow() -> None:
    backoff = Backoff(1.0, 320.0, Ceiling())
    for _ in range(2000):
        backoff.next_delay()
    assert backoff.attempt == 2000
    assert backoff.ceiling() == 320.0
    assert backoff.next_delay() == 320.0


def test_default_rng() -> None:
    backoff = Backoff(1.0, 2.0)
    assert 0.0 <= backoff.next_delay() <= 1.0


@pytest.mark.parametrize(
    ("initial", "maximum", "message"),
    [(0.0, 1.0, "initial must be > 0"), (-1.0, 1.0, "initial"), (2.0, 1.0, "maximum")],
)
def test_invalid_arguments(initial: float, maximum: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(initial, maximum)


@given(
    st.floats(0.001, 10.0),
    st.floats(1.0, 100.0),
    st.integers(0, 2**32),
    st.integers(0, 40),
)
def test_delay_within_bounds(initial: float, factor: float, seed: int, attempts: int) -> None:
    maximum = initial * factor
    backoff = Backoff(initial, maximum, random.Random(seed))
    for n in range(attempts):
        ceiling = backoff.ceiling()
        assert ceiling == min(maximum, initial * 2**n)
        assert 0.0 <= backoff.next_delay() <= ceiling


NOW = datetime(2025, 11, 26, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("007", 7.0),
        ("Wed, 26 Nov 2025 12:01:30 GMT", 90.0),  # IMF-fixdate
        ("Wednesday, 26-Nov-25 12:00:10 GMT", 10.0),  # RFC 850
        ("Wed Nov 26 12:00:05 2025", 5.0),  # asctime, no zone: UTC
        ("Wed, 26 Nov 2025 13:00:00 +0100", 0.0),  # same instant as now
        ("Wed, 26 Nov 2025 11:00:00 GMT", 0.0),  # past: retry now, never negative
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    ["", "  ", "-1", "+5", "1e3", "1.", ".5", "1.2.3", "5 s", "abc", "\uff15", "9" * 400,
     "Wed, 32 Nov 2025 12:00:00 GMT", "Wed, 26 Foo 2025 12:00:00 GMT", "tomorrow"],
)  # fmt: skip
def test_parse_retry_after_unparsable(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_roundtrip_with_format_datetime() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == when.timestamp() - NOW
