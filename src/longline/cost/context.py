"""One workload against one price book: the derived figures every option's line items use.

Kept apart from the options so that each option reads as its formula (docs/cost.md) and the
period, event count and storage arithmetic are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from longline.cost.prices import PriceBook
from longline.cost.result import LineItem
from longline.cost.workload import Workload

__all__ = ["Ctx", "Items", "Unpriceable"]

Items = list[LineItem]


class Unpriceable(Exception):
    """An option that cannot carry the workload (too fast for one function, item too big)."""


@dataclass(frozen=True)
class Ctx:
    """One workload against one price book: derived figures and priced line items."""

    w: Workload
    book: PriceBook

    def item(
        self,
        category: str,
        label: str,
        quantity: Decimal | int,
        unit: str,
        price: tuple[str, str] | tuple[str, str, str],
        *,
        per: int = 1,
        meter: str = "",
    ) -> LineItem:
        """A line item at the list price ``(service, key[, variant])`` / ``per``.

        A zero quantity needs no price, so an unknown price there is no reason to refuse.
        """
        quantity = Decimal(quantity)
        unit_price = Decimal(0)
        if quantity:
            unit_price = self.book.price(self.w.region, *price) / per
        return LineItem(category, label, quantity, unit, unit_price, meter, price[0])

    def n(self, table: str, key: str) -> Decimal:
        return self.book.number(table, key)

    @property
    def seconds(self) -> Decimal:
        return self.w.days * 86400

    @property
    def hours(self) -> Decimal:
        return self.w.days * 24

    @property
    def months(self) -> Decimal:
        return self.w.days / self.n("meta", "month_days")

    @property
    def events(self) -> Decimal:
        return self.w.events_per_second * self.seconds

    @property
    def write_mult(self) -> int:
        return 2 if self.w.dynamodb_writes == "transactional" else 1

    def avg_stored(self, item_bytes: Decimal) -> Decimal:
        """Mean bytes held over the period: growing from empty, capped by retention."""
        t = self.seconds
        rate = self.w.events_per_second * item_bytes
        if self.w.retention_days is None or self.w.retention_days * 86400 >= t:
            return rate * t / 2
        r = self.w.retention_days * 86400
        return rate * (r - r * r / (2 * t))

    def max_stored(self, item_bytes: Decimal) -> Decimal:
        keep = self.seconds
        if self.w.retention_days is not None:
            keep = min(keep, self.w.retention_days * 86400)
        return self.w.events_per_second * item_bytes * keep
