"""Exact number helpers shared by the cost model and its reports.

Quantities and prices stay ``Decimal`` end to end, so the arithmetic a user is shown can be
checked by hand; these helpers only round where a count must be whole or a label short.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

__all__ = ["GIB", "MILLION", "ceil", "num", "short", "usd"]

GIB = Decimal(2**30)
MILLION = Decimal(1_000_000)


def ceil(x: Decimal) -> int:
    """Round up to a whole count (instances, invocations, billing units)."""
    return int(x.to_integral_value(rounding=ROUND_CEILING))


def num(x: Decimal | int) -> str:
    """Exact plain notation with thousands separators: 2880 -> '2,880', 5.40 -> '5.4'."""
    d = Decimal(x).normalize()
    return format(d, ",f")


def short(x: Decimal) -> str:
    """Four significant figures, for labels only (quantities stay exact)."""
    return num(Decimal(f"{x:.4g}"))


def usd(x: Decimal) -> str:
    """An exact dollar figure, no rounding: for arithmetic shown to the user."""
    return ("-$" if x < 0 else "$") + num(abs(x))
