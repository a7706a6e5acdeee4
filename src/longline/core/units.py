"""Human units for durations and sizes, as written in config files.

Configs say ``30s`` and ``1MB`` rather than ``30.0`` and ``1000000`` because people read them;
everything past the config loader works in float seconds and int bytes. Pure and exact: sizes
are computed with ``Decimal`` so ``1.5KB`` is exactly 1500 bytes.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["format_duration", "format_size", "parse_duration", "parse_duration_exact", "parse_size"]

# us/µs for what takes less than a millisecond (`longline cost --cpu-per-event 9us`); min as
# `longline cost` always read it.
_DURATION_UNITS: dict[str, Decimal] = {
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),  # MICRO SIGN
    "μs": Decimal("0.000001"),  # GREEK SMALL LETTER MU
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "min": Decimal(60),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_DURATION_PART = re.compile(
    r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(" + "|".join(_DURATION_UNITS) + ")", re.IGNORECASE
)
_PLAIN_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*")
DURATION_HELP = "a number of seconds or a duration such as 500ms, 30s, 1.5s, 5m, 23h, 1d, 1h30m"

_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
SIZE_HELP = "a number of bytes or a size such as 200B, 64KB, 1MB, 1GB, 64KiB, 1MiB"


def parse_duration(v: str | int | float) -> float:
    """Seconds from a number (seconds) or a string such as ``500ms``, ``1h30m``.

    Raises ``ValueError`` saying what is accepted for negatives, empty strings, unknown units,
    NaN and infinity.
    """
    if isinstance(v, float) and math.isfinite(v) and v >= 0:
        return v
    return float(parse_duration_exact(v))


def parse_duration_exact(v: str | int | float) -> Decimal:
    """``parse_duration`` as an exact ``Decimal`` (``longline cost`` prices with them)."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError(f"expected {DURATION_HELP}, got {type(v).__name__}")
    if isinstance(v, int | float):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"duration must be finite and >= 0; expected {DURATION_HELP}")
        return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    text = v.strip()
    if not text:
        raise ValueError(f"empty duration; expected {DURATION_HELP}")
    if text.startswith("-"):
        raise ValueError(f"negative duration {v!r}; expected {DURATION_HELP}")
    plain = _PLAIN_NUMBER.fullmatch(text)
    if plain:
        return Decimal(plain.group(1))
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            raise ValueError(f"invalid duration {v!r}; expected {DURATION_HELP}")
        total += Decimal(part.group(1)) * _DURATION_UNITS[part.group(2).lower()]
        pos = part.end()
    return total


def parse_size(v: str | int) -> int:
    """Bytes from an int (bytes) or a string such as ``64KB`` (64 000) or ``64KiB`` (65 536).

    Units are case-insensitive; KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.
    A fractional count of bytes (``1.5B``) is rejected.
    """
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError(f"expected {SIZE_HELP}, got {type(v).__name__}")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"size must be >= 0; expected {SIZE_HELP}")
        return v
    text = v.strip()
    if not text:
        raise ValueError(f"empty size; expected {SIZE_HELP}")
    if text.startswith("-"):
        raise ValueError(f"negative size {v!r}; expected {SIZE_HELP}")
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _SIZE_UNITS):
        raise ValueError(f"invalid size {v!r}; expected {SIZE_HELP}")
    try:
        amount = Decimal(match.group(1)) * _SIZE_UNITS[unit or "b"]
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"invalid size {v!r}; expected {SIZE_HELP}") from None
    if amount != amount.to_integral_value():
        raise ValueError(f"size {v!r} is not a whole number of bytes; expected {SIZE_HELP}")
    return int(amount)


def _trim(d: Decimal) -> str:
    """Decimal without exponent or trailing zeros: 1.50 -> '1.5', 2.0 -> '2'."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(seconds: float) -> str:
    """Compact display form that ``parse_duration`` reads back: ``500ms``, ``1h30m``, ``1.5s``."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("duration must be finite and >= 0")
    if seconds == 0:
        return "0s"
    total = Decimal(repr(float(seconds)))
    if total < 1:
        return f"{_trim(total * 1000)}ms"
    parts: list[str] = []
    for unit in ("d", "h", "m"):
        size = _DURATION_UNITS[unit]
        count = int(total // size)
        if count:
            parts.append(f"{count}{unit}")
            total -= count * size
    if total:
        parts.append(f"{_trim(total)}s")
    return "".join(parts)


def format_size(n: int) -> str:
    """Display form: a whole count below 1000 (1024 for KiB...) of the largest unit dividing
    ``n`` exactly (``64KiB``, ``1MB``, ``999B``), else the largest decimal unit to two decimals
    (``1500`` -> ``1.5KB``), marked ``~`` when rounded (``~1.23MB``)."""
    if n < 0:
        raise ValueError("size must be >= 0")
    if n == 0:
        return "0B"
    exact = [
        (size, name)
        for name, size in _SIZE_UNITS.items()
        if n % size == 0 and n // size < (1024 if name.endswith("ib") else 1000)
    ]
    if exact:
        size, name = max(exact)
        return f"{n // size}{_unit_label(name)}"
    name = next(u for u in ("tb", "gb", "mb", "kb") if n >= _SIZE_UNITS[u])
    amount = Decimal(n) / _SIZE_UNITS[name]
    rounded = round(amount, 2)
    return f"{'' if rounded == amount else '~'}{_trim(rounded)}{_unit_label(name)}"


def _unit_label(name: str) -> str:
    """Canonical spelling of a size unit: 'kib' -> 'KiB', 'mb' -> 'MB'."""
    if name == "b":
        return "B"
    if name.endswith("ib"):
        return name[0].upper() + "iB"
    return name.upper()
