"""Durations and sizes as people write them in configs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longline.core.units import (
    format_duration,
    format_size,
    parse_duration,
    parse_duration_exact,
    parse_size,
)

DURATION_HELP = "a number of seconds or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"
SIZE_HELP = "a number of bytes or a size such as 200B, 64KB, 1MB, 1GB, 64KiB, 1MiB"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("0.25", 0.25),
        ("500ms", 0.5),
        ("20ms", 0.02),
        ("30s", 30.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("5m", 300.0),
        ("23h", 82800.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1H30M", 5400.0),
        ("500MS", 0.5),
        (" 2 m ", 120.0),
        ("1h 30m", 5400.0),
        ("0s", 0.0),
        ("9us", 9e-6),
        ("9µs", 9e-6),
        ("2min", 120.0),
        ("1min30s", 90.0),
        ("1m500ms", 60.5),
    ],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_exact_is_the_same_syntax_exactly() -> None:
    """``longline cost`` prices with decimals: 0.1s stays 0.1, 9us stays 0.000009."""
    assert parse_duration_exact("100ms") == Decimal("0.1")
    assert parse_duration_exact("9us") == Decimal("0.000009")
    assert parse_duration_exact("1h30m") == Decimal(5400)
    assert parse_duration_exact(0.1) == Decimal("0.1")
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_exact("5 minutes")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", f"empty duration; expected {DURATION_HELP}"),
        ("   ", f"empty duration; expected {DURATION_HELP}"),
        ("-1s", f"negative duration '-1s'; expected {DURATION_HELP}"),
        (-1, f"duration must be finite and >= 0; expected {DURATION_HELP}"),
        (float("inf"), f"duration must be finite and >= 0; expected {DURATION_HELP}"),
        (float("nan"), f"duration must be finite and >= 0; expected {DURATION_HELP}"),
        ("5x", f"invalid duration '5x'; expected {DURATION_HELP}"),
        ("1h30", f"invalid duration '1h30'; expected {DURATION_HELP}"),
        ("s", f"invalid duration 's'; expected {DURATION_HELP}"),
        ("1..5s", f"invalid duration '1..5s'; expected {DURATION_HELP}"),
        ("nan", f"invalid duration 'nan'; expected {DURATION_HELP}"),
        ("5 minutes", f"invalid duration '5 minutes'; expected {DURATION_HELP}"),
        (True, f"expected {DURATION_HELP}, got bool"),
        (None, f"expected {DURATION_HELP}, got NoneType"),
        ([1], f"expected {DURATION_HELP}, got list"),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (512, 512),
        ("512", 512),
        ("200B", 200),
        ("200b", 200),
        ("64KB", 64_000),
        ("64kb", 64_000),
        ("1MB", 1_000_000),
        ("1mb", 1_000_000),
        ("1GB", 1_000_000_000),
        ("2TB", 2_000_000_000_000),
        ("64KiB", 65_536),
        ("64kib", 65_536),
        ("1MiB", 1_048_576),
        ("1GiB", 1_073_741_824),
        ("1.5KB", 1_500),
        ("0.5MiB", 524_288),
        (" 10 KB ", 10_000),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", f"empty size; expected {SIZE_HELP}"),
        ("-1", f"negative size '-1'; expected {SIZE_HELP}"),
        ("-1KB", f"negative size '-1KB'; expected {SIZE_HELP}"),
        (-3, f"size must be >= 0; expected {SIZE_HELP}"),
        ("5x", f"invalid size '5x'; expected {SIZE_HELP}"),
        ("10 kilobytes", f"invalid size '10 kilobytes'; expected {SIZE_HELP}"),
        ("KB", f"invalid size 'KB'; expected {SIZE_HELP}"),
        ("1.5B", f"size '1.5B' is not a whole number of bytes; expected {SIZE_HELP}"),
        (1.5, f"expected {SIZE_HELP}, got float"),
        (True, f"expected {SIZE_HELP}, got bool"),
        (None, f"expected {SIZE_HELP}, got NoneType"),
    ],
)
def test_parse_size_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(value)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.5, "500ms"),
        (0.0005, "0.5ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (30, "30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (82800, "23h"),
        (86400, "1d"),
        (93784.5, "1d2h3m4.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1KB"),
        (1500, "1.5KB"),
        (64_000, "64KB"),
        (65_536, "64KiB"),
        (1_000_000, "1MB"),
        (1_048_576, "1MiB"),
        (123_456_789, "~123.46MB"),
        (1_995_001, "~2MB"),
        (1_230_000, "1.23MB"),
        (3_000_000_000, "3GB"),
        (1_024_000, "1000KiB"),
        (5_000_000_000_000_000, "5000TB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_format_duration_rejects(bad: float) -> None:
    with pytest.raises(ValueError, match="duration must be finite and >= 0"):
        format_duration(bad)


def test_format_size_rejects_negative() -> None:
    with pytest.raises(ValueError, match="size must be >= 0"):
        format_size(-1)


@given(st.integers(min_value=0, max_value=10**10))
def test_format_duration_reads_back_whole_milliseconds(ms: int) -> None:
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_reads_back_whole_seconds_exactly(s: int) -> None:
    assert parse_duration(format_duration(s)) == s


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_reads_back_unless_marked_approximate(n: int) -> None:
    text = format_size(n)
    if not text.startswith("~"):
        assert parse_size(text) == n
