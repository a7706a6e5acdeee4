"""What pricing a workload returns: line items per option, and which option is cheapest.

A line item keeps quantity and unit price apart (``cost`` is their exact product) so the report
can show the arithmetic, not only the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from longline.cost.workload import Workload

__all__ = ["OPTIONS", "Comparison", "LineItem", "OptionCost"]

OPTIONS: dict[str, str] = {
    "lambda": "1. Lambda (self-chained handoffs)",
    "lambda_sfn": "2. Lambda + Step Functions",
    "ec2_hybrid": "3. EC2 holds connections, serverless processing",
    "fargate_hybrid": "3b. Fargate holds connections, serverless processing",
    "ec2_all": "4. EC2 does all processing",
}


@dataclass(frozen=True)
class LineItem:
    """quantity x unit_price; ``meter`` groups usage that one free-tier allowance covers."""

    category: str
    label: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    meter: str = ""
    service: str = ""

    @property
    def cost(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class OptionCost:
    """One option's line items, or the reason it could not be priced (``error``)."""

    key: str
    name: str
    items: tuple[LineItem, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((i.cost for i in self.items), Decimal(0))


@dataclass(frozen=True)
class Comparison:
    workload: Workload
    options: tuple[OptionCost, ...]

    @property
    def cheapest(self) -> list[str]:
        """Keys of the priced options with the lowest total (several on a tie)."""
        priced = [o for o in self.options if o.error is None]
        if not priced:
            return []
        low = min(o.total for o in priced)
        return [o.key for o in priced if o.total == low]

    def option(self, key: str) -> OptionCost:
        return next(o for o in self.options if o.key == key)
