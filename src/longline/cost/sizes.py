"""Option 3 shape by shape: what one instance (or Fargate task) holds, and what the workload costs.

The comparison prices one shape per option (the cheapest with ``--instance-type auto``); this
table shows every shape, so the memory-or-CPU trade behind that choice can be read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from longline.cost.capacity import Fit, per_thousand_connection_months
from longline.cost.context import Ctx, Unpriceable
from longline.cost.options import ec2_hybrid, fargate_hybrid, server_fit, task_fit
from longline.cost.prices import PriceBook, UnknownPrice
from longline.cost.workload import Workload

__all__ = ["Size", "option3_sizes"]


@dataclass(frozen=True)
class Size:
    """One shape of option 3 (``key`` ec2_hybrid or fargate_hybrid) against the workload."""

    key: str
    shape: str
    fit: Fit | None
    total: Decimal | None = None
    per_thousand_connection_months: Decimal | None = None
    error: str | None = None


def _size(key: str, shape: str, c: Ctx) -> Size:
    try:
        fit = task_fit(c) if key == "fargate_hybrid" else server_fit(c, shape)
        option = fargate_hybrid(c) if key == "fargate_hybrid" else ec2_hybrid(c)
    except (UnknownPrice, Unpriceable) as exc:
        return Size(key, shape, None, error=str(exc))
    return Size(key, fit.shape, fit, option.total, per_thousand_connection_months(option, c))


def option3_sizes(w: Workload, book: PriceBook) -> list[Size]:
    """Every instance type of the price file, then the workload's Fargate task shape."""
    sizes = [
        _size("ec2_hybrid", itype, Ctx(replace(w, instance_type=itype), book))
        for itype in book.instance_types
    ]
    return [*sizes, _size("fargate_hybrid", "Fargate", Ctx(w, book))]
