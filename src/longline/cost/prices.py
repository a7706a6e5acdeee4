"""The price file behind ``longline cost``: exact list prices that refuse to be guessed.

``prices.toml`` is read with every number as a ``Decimal``; a price marked ``"unknown"`` for a
region raises ``UnknownPrice`` naming it and its source page, so an option that needs it is
refused rather than priced with an invented figure.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["CostError", "PriceBook", "UnknownPrice", "load_prices"]


class CostError(ValueError):
    """A workload or price file the model cannot price; ``field`` names the offending input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownPrice(CostError):
    """A price the data file marks as unknown for a region: refused rather than guessed."""


class PriceBook:
    """The parsed ``prices.toml``: lookups that refuse unknown prices instead of guessing."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.data = data
        self.origin = origin

    @property
    def regions(self) -> list[str]:
        return sorted(self.data.get("regions", {}))

    @property
    def instance_types(self) -> list[str]:
        return list(self.data.get("instances", {}))

    def source(self, service: str) -> str:
        return str(self.data.get("sources", {}).get(service, "?"))

    def number(self, table: str, key: str) -> Decimal:
        """A non-price figure (limits, capacity, free tier)."""
        try:
            return Decimal(self.data[table][key])
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise CostError(f"{self.origin}: [{table}] lacks a number for '{key}'") from exc

    def instance(self, name: str) -> dict[str, Decimal]:
        shape = self.data.get("instances", {}).get(name)
        if shape is None:
            known = ", ".join(self.instance_types)
            raise CostError(
                f"unknown instance type '{name}' (--instance-type); known: auto, {known}",
                "instance_type",
            )
        return {k: Decimal(v) for k, v in shape.items()}

    def uncertain(self, region: str, service: str) -> bool:
        return bool(self.data["regions"][region].get(service, {}).get("uncertain", False))

    def price(self, region: str, service: str, key: str, variant: str | None = None) -> Decimal:
        """One list price; raises UnknownPrice, naming it and its source, when it is unknown."""
        table = self.data["regions"][region].get(service, {})
        value = table.get(key, "unknown")
        if variant is not None:
            value = value.get(variant, "unknown") if isinstance(value, dict) else "unknown"
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return Decimal(value)
        what = f"{service}.{key}" + (f"[{variant}]" if variant else "")
        raise UnknownPrice(
            f"the price {what} is not known for {region} (see {self.origin}; "
            f"source: {self.source(service)}); it is not guessed"
        )


def load_prices(path: str | Path | None = None) -> PriceBook:
    """Read the packaged price file (or ``path``), keeping every number an exact Decimal."""
    try:
        if path is None:
            text = resources.files("longline.cost").joinpath("prices.toml").read_text("utf-8")
            origin = "longline/aws/prices.toml"
        else:
            text = Path(path).read_text("utf-8")
            origin = str(path)
        data = tomllib.loads(text, parse_float=Decimal)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CostError(f"cannot read price file: {exc}", "prices") from exc
    if not data.get("regions"):
        raise CostError(f"{origin} defines no [regions]", "prices")
    return PriceBook(data, origin)
