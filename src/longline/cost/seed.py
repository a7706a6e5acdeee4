"""The seed's table, figure by figure: its numbers next to ours and the arithmetic between them.

The seed prices each option by one "minimum" figure; some of them are rounded, one is off by a
factor of ten and several leave out what the option needs to work. Showing both side by side,
with the multiplication spelled out, lets a reader check the correction instead of trusting it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from longline.cost.numbers import ceil, num, usd
from longline.cost.options import compare
from longline.cost.prices import PriceBook, UnknownPrice
from longline.cost.result import Comparison, LineItem, OptionCost
from longline.cost.workload import Workload

__all__ = ["SEED_HANDOFFS_TEXT", "SeedFigure", "seed_figures", "seed_workload"]

SEED_HANDOFFS_TEXT = "one handoff every 15 minutes"


def seed_workload() -> Workload:
    """The seed's scenario: one connection, no events (its "min"), 128 MB x86 Lambda, t4g.nano,
    ap-southeast-2, 30 days, 15-minute handoffs without overlap, no free tier."""
    return Workload(
        region="ap-southeast-2",
        streams=1,
        events_per_second=Decimal(0),
        lambda_memory=128,
        arch="x86_64",
        handoff_interval=Decimal(900),
        overlap=Decimal(0),
        instance_type="t4g.nano",
        days=Decimal(30),
        free_tier=False,
    )


@dataclass(frozen=True)
class SeedFigure:
    """One figure of the seed next to ours; ``verdict`` is same, rounded, differs or no figure."""

    figure: str
    seed: Decimal | None
    ours: Decimal
    verdict: str
    why: str
    unit: str = "$"


_Add = Callable[..., None]  # _Figures.add


def _verdict(seed: Decimal | None, ours: Decimal) -> str:
    if seed is None:
        return "no figure"
    if seed == ours:
        return "same"
    if ours.quantize(Decimal(1).scaleb(seed.as_tuple().exponent)) == seed:  # type: ignore[arg-type]
        return "rounded"
    return "differs"


def _item(option: OptionCost, category: str) -> LineItem:
    return next(i for i in option.items if i.category == category)


class _Figures(list[SeedFigure]):
    """The figures so far; ``add`` takes the seed's figure as the seed prints it."""

    def add(self, figure: str, seed: str | None, ours: Decimal, why: str, unit: str = "$") -> None:
        value = None if seed is None else Decimal(seed)
        self.append(SeedFigure(figure, value, ours, _verdict(value, ours), why, unit))


def seed_figures(book: PriceBook, w: Workload | None = None) -> list[SeedFigure]:
    """Each figure the seed prints, ours for the same scenario, and the arithmetic between them."""
    w = w or seed_workload()
    if w.instance_type == "auto":  # the seed's figure is for a t4g.nano
        w = replace(w, instance_type="t4g.nano")
    cmp = compare(w, book)
    figures = _Figures()
    for section in (_lambda_figures, _step_functions_figures, _ec2_figures):
        section(figures.add, book, w, cmp)
    return list(figures)


def _lambda_figures(add: _Add, book: PriceBook, w: Workload, cmp: Comparison) -> None:
    """The per-ms price and the 30-day duration: rounding, then the GB-second billing."""
    gbs = book.price(w.region, "lambda", "gb_second", w.arch)
    gb = Decimal(w.lambda_memory) / 1024
    add(
        f"Lambda $/ms ({w.lambda_memory} MB {w.arch})",
        "0.0000000021",
        gbs * gb / 1000,
        f"{usd(gbs)}/GB-s x {num(gb)} GB / 1000 = {usd(gbs * gb / 1000)}/ms; AWS's per-ms "
        "table shows it rounded to 2 significant figures",
    )
    one = cmp.option("lambda")
    if one.error is None:
        compute, requests = _item(one, "compute"), _item(one, "requests")
        ms = w.days * 86400 * 1000
        add(
            f"Lambda, {num(w.days)} days (duration)",
            "5.4432",
            compute.cost,
            f"seed: $0.0000000021/ms x {num(ms)} ms = {usd(Decimal('0.0000000021') * ms)}, with "
            f"the rounded per-ms price; billed per GB-second: {num(compute.quantity)} GB-s x "
            f"{usd(compute.unit_price)} = {usd(compute.cost)}; plus {num(requests.quantity)} "
            f"invocations x {usd(requests.unit_price)} = {usd(requests.cost)}; option 1 in all: "
            f"{usd(one.total)}",
        )


def _step_functions_figures(add: _Add, book: PriceBook, w: Workload, cmp: Comparison) -> None:
    """The transition price, the transition count (not one per handoff) and the factor of ten."""
    sfn = book.price(w.region, "stepfunctions", "standard_per_1000_transitions")
    free = book.number("free_tier", "stepfunctions_transitions")
    add(
        "Step Functions $ per 1,000 transitions",
        "0.025",
        sfn,
        "a flat Standard-workflow price for every transition, not only the first 1,000 "
        f"(the free tier, when it applies, covers {num(free)} a month)",
    )
    add("Step Functions $ per transition", "0.000025", sfn / 1000, f"{usd(sfn)} / 1,000")
    two = cmp.option("lambda_sfn")
    if two.error is None:
        orch = _item(two, "orchestration")
        cycles = ceil(w.days * 86400 / w.handoff_interval)
        floor = Decimal(cycles) * sfn / 1000
        add(
            f"state transitions in {num(w.days)} days",
            "2880",
            orch.quantity,
            f"2,880 = 30 d x 24 h x 4: {SEED_HANDOFFS_TEXT}, which is the floor only if a handoff "
            f"takes a single transition; longline's loop takes {w.transitions_per_handoff} per "
            f"cycle (Invoke, Wait, Count, Loop) and {w.transitions_per_execution} per "
            f"continue-as-new execution: {orch.label.split(': ', 1)[1]} = {num(orch.quantity)}",
            "transitions",
        )
        add(
            f"Step Functions, {num(w.days)} days",
            "0.72",
            orch.cost,
            f"2,880 x {usd(sfn / 1000)} = {usd(Decimal(2880) * sfn / 1000)}, not $0.72 (a factor "
            f"of 10); {num(Decimal(cycles))} handoffs at one transition each = {usd(floor)}; "
            f"longline's {num(orch.quantity)} transitions = {usd(orch.cost)}",
        )
        add(
            f"Lambda + Step Functions, {num(w.days)} days",
            "6.1632",
            two.total,
            f"seed: $5.4432 + $0.72; ours: Lambda {usd(_item(two, 'compute').cost)} + "
            f"transitions {usd(orch.cost)} + the rest of option 2's line items = {usd(two.total)}",
        )


def _ec2_figures(add: _Add, book: PriceBook, w: Workload, cmp: Comparison) -> None:
    """The hourly price (us-east-1's, not Sydney's) and what an instance needs besides itself."""
    itype = w.instance_type
    hourly = book.price(w.region, "ec2", "hourly", itype)
    try:
        us = book.price("us-east-1", "ec2", "hourly", itype)
        east = f"; us-east-1 lists {usd(us)}"
        if us == Decimal("0.0042") != hourly:
            east += ": the seed's $0.0042 is the us-east-1 price"
    except (UnknownPrice, KeyError):
        east = ""
    mark = " (marked uncertain in prices.toml)" if book.uncertain(w.region, "ec2") else ""
    add(
        f"EC2 {itype} $/hour",
        "0.0042",
        hourly,
        f"{w.region} lists {usd(hourly)}{mark}{east}",
    )
    three = cmp.option("ec2_hybrid")
    if three.error is None:
        hours = w.days * 24
        rest = [i for i in three.items if i.category in ("storage", "network")]
        extras = "; ".join(
            f"{i.label}: {num(i.quantity)} x {usd(i.unit_price)} = {usd(i.cost)}" for i in rest
        )
        add(
            f"EC2 {itype}, {num(w.days)} days (instance)",
            "3.024",
            _item(three, "compute").cost,
            f"seed: $0.0042 x {num(hours)} h = {usd(Decimal('0.0042') * hours)}; at {usd(hourly)}: "
            f"{usd(hourly * hours)}; the seed leaves out what the instance needs to work — "
            f"{extras} — option 3 in all: {usd(three.total)}",
        )
    four = cmp.option("ec2_all")
    if four.error is None:
        add(
            f"EC2 for all processing, {num(w.days)} days",
            None,
            four.total,
            "the seed gives no figure"
            + ("; without events it costs what option 3 does" if not w.events_per_second else "")
            + "; it grows with events/s by instance size, not per write",
        )
