"""``longline cost``: price the seed's four ways to run a connection manager for a workload.

Prints which sizing figures were used (flags, the benchmark results file or the documented
figures), every option's line items, total and price per 1,000 connection-months (cheapest
marked), option 3 shape by shape, where the cheapest option changes with events/s and with
streams, and with ``--seed`` the seed's own figures next to ours. Flags map one to one onto
``Workload`` fields, so the model's errors name the flag to fix.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, fields, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from longline import cost as model
from longline.cli.options import Duration
from longline.cost.context import Ctx
from longline.cost.plot import PlotUnavailable, plot

__all__ = ["cost_command"]

if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older releases are not subscriptable
    _ParamType = click.ParamType[Any]
else:
    _ParamType = click.ParamType

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "k": 1024, "mb": 10**6, "mib": 2**20}
_QUANTITY = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+)\s*([a-zA-Zµ]*)\s*$")


class _Quantity(_ParamType):
    """A number with an optional unit suffix: sizes to bytes."""

    def __init__(self, name: str, units: dict[str, Any], integral: bool) -> None:
        self.name = name
        self.units = units
        self.integral = integral

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | Decimal):
            return value
        match = _QUANTITY.match(str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in self.units:
            units = ", ".join(u for u in self.units if u)
            self.fail(f"{value!r} is not a {self.name} (a number, optionally with {units})")
        amount = Decimal(match.group(1)) * self.units[unit]
        return int(amount) if self.integral else amount


class _Number(_ParamType):
    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not a number")


SIZE = _Quantity("size", _SIZE_UNITS, integral=True)
BYTES = _Quantity("size", _SIZE_UNITS, integral=False)
DURATION = Duration(exact=True)  # the config's syntax, as every duration option takes
NUMBER = _Number()
DEFAULTS = model.Workload()


def _d(name: str, kind: Any = None) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, int | Decimal):
        return str(value)
    return model.num(value) + {id(SIZE): "B", id(DURATION): "s"}.get(id(kind), "")


_MEASURED = ("memory_per_stream", "process_memory", "cpu_per_event")


# (flag, type, help); every flag is a Workload field and defaults to the Workload default.
_WORKLOAD_FLAGS: list[tuple[str, Any, str]] = [
    ("--region", str, "AWS region (prices.toml lists the known ones)"),
    ("--streams", int, "connections held open, one per stream"),
    ("--events-per-second", NUMBER, "events per second over all streams"),
    ("--event-size", SIZE, "average event size, e.g. 300B, 2KiB"),
    ("--lambda-memory", int, "connection function memory, MB (raised if it cannot keep up)"),
    ("--arch", click.Choice(model.ARCHS), "Lambda and Fargate architecture"),
    ("--connections-per-function", int, "connections one Lambda function holds"),
    ("--handoff-interval", DURATION, "time between handoffs of one function, e.g. 14m"),
    ("--overlap", DURATION, "make-before-break overlap per handoff, e.g. 10s"),
    ("--transitions-per-handoff", int, "Step Functions transitions per loop cycle"),
    ("--cycles-per-execution", int, "loop cycles before continuing as a new execution"),
    ("--instance-type", str, "EC2 type for options 3 and 4, or auto (cheapest that fits)"),
    ("--fargate-vcpu", NUMBER, "Fargate task vCPU (0.25, 0.5, 1, 2, 4, 8, 16)"),
    ("--fargate-memory", NUMBER, "Fargate task memory, GB"),
    ("--days", NUMBER, "period priced; the seed's month is 30"),
    ("--dynamodb-writes", click.Choice(model.WRITE_MODES), "transactional costs 2 WRU per KB"),
    ("--item-overhead", SIZE, "bytes each stored item adds to the event (key, seq, cursor)"),
    ("--key-size", SIZE, "average event key; the store writes a uniqueness item per event"),
    ("--batch-window", DURATION, "writer batch window, e.g. 100ms"),
    ("--batch-max", int, "events per store transaction at most (split into parts of 49)"),
    ("--processor-batch", int, "DynamoDB Streams batch size of the processor Lambda"),
    ("--processor-duration", DURATION, "processor Lambda run time per batch, e.g. 100ms"),
    ("--processor-memory", int, "processor Lambda memory, MB"),
    ("--ebs-gb", NUMBER, "root volume per instance, GB"),
    ("--egress-per-event", SIZE, "bytes sent to the internet per event (e.g. webhooks)"),
    ("--retention-days", NUMBER, "days events are kept (default: all of them)"),
    ("--memory-per-stream", BYTES, "RSS one idle stream adds, e.g. 22KiB (default: measured)"),
    ("--process-memory", BYTES, "RSS of a longline process with no stream (default: measured)"),
    ("--cpu-per-event", DURATION, "CPU time per captured event, e.g. 9us (default: measured)"),
]
_SWITCHES = [
    ("--free-tier/--no-free-tier", "free_tier", "apply the always-free allowances"),
    ("--public-ipv4/--no-public-ipv4", "public_ipv4", "servers pay for a public IPv4 address"),
]


def _workload_options(func: Any) -> Any:
    for flags, name, text in reversed(_SWITCHES):
        func = click.option(flags, name, default=None, help=f"{text} [default: {_d(name)}]")(func)
    for flag, kind, text in reversed(_WORKLOAD_FLAGS):
        name = flag[2:].replace("-", "_")
        shown = "" if getattr(DEFAULTS, name) is None else f" [default: {_d(name, kind)}]"
        func = click.option(flag, name, type=kind, default=None, help=text + shown)(func)
    return func


def _sizing(
    path: str | None, transport: str, given: dict[str, Any]
) -> tuple[dict[str, Decimal], str]:
    """The sizing fields (flags first, then the file, then the documented figures) and a line
    saying which figures were used and where each came from."""
    flags = {k: given[k] for k in _MEASURED if k in given}
    m = None
    if path is not None or len(flags) < len(_MEASURED):
        if path is not None:
            m = model.load_measurements(path, transport)
        elif model.DEFAULT_PATH.is_file():
            m = model.load_measurements(model.DEFAULT_PATH, transport)
        else:
            m = model.documented(transport, f"; {model.DEFAULT_PATH} not found")
    values: dict[str, Decimal] = {k: flags[k] if k in flags else getattr(m, k) for k in _MEASURED}
    mem, proc, cpu = (values[k] for k in _MEASURED)
    tags = {k: f" [--{k.replace('_', '-')}]" if k in flags else "" for k in _MEASURED}
    line = (
        f"sizing: {_qty(mem / 1024)} KiB per stream{tags['memory_per_stream']}, "
        f"{_qty(proc / 2**20)} MiB per process{tags['process_memory']}, "
        f"{_qty(cpu * 10**6)} µs of CPU per event{tags['cpu_per_event']}"
    )
    if m is not None:
        line += f"; from {m.source}"
    return values, line


def _money(x: Decimal) -> str:
    """Display rounding only: 4 decimals, or 2 significant figures below a cent."""
    if x == 0 or abs(x) >= Decimal("0.01"):
        return ("-$" if x < 0 else "$") + format(abs(x).quantize(Decimal("0.0001")), ",f")
    return model.usd(Decimal(f"{x:.2g}"))


def _qty(x: Decimal) -> str:
    return model.num(x if x == x.to_integral_value() else Decimal(f"{x:.6g}"))


def _plain(x: Any) -> Any:
    if isinstance(x, Decimal):
        return format(x.normalize(), "f")
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def _per_kcm(o: model.OptionCost, w: model.Workload, book: model.PriceBook) -> Decimal | None:
    if o.error:
        return None
    return model.per_thousand_connection_months(o, Ctx(w, book))


def _sizes_json(sizes: list[model.Size]) -> list[dict[str, Any]]:
    return [
        {
            "option": s.key,
            "shape": s.shape,
            "streams_each": s.fit.streams_each if s.fit else None,
            "events_per_second_each": s.fit.events_each if s.fit else None,
            "by_memory": s.fit.by_memory if s.fit else None,
            "by_cpu": s.fit.by_cpu if s.fit else None,
            "needed": s.fit.count if s.fit and not s.error else None,
            "binding": s.fit.binding if s.fit and not s.error else None,
            "total": s.total,
            "per_1000_connection_months": s.per_thousand_connection_months,
            "error": s.error,
        }
        for s in sizes
    ]


def _print_sizes(sizes: list[model.Size], w: model.Workload, console: Console) -> None:
    title = (
        f"Option 3 by shape: what one holds, and {model.num(w.streams)} stream(s) at "
        f"{model.num(w.events_per_second)} events/s"
    )
    table = Table(title=title)
    for column in ("shape", "streams each (memory)", "events/s each (CPU)", "needed", "binds"):
        table.add_column(column, justify="left" if column in ("shape", "binds") else "right")
    table.add_column("total", justify="right")
    table.add_column("per 1,000 connection-months", justify="right")
    refused = []
    for s in sizes:
        if s.fit is None or s.error:
            refused.append(f"  {s.shape}: not priced: {s.error}")
            continue
        table.add_row(
            esc(s.shape),
            model.num(s.fit.streams_each),
            _qty(s.fit.events_each.quantize(Decimal(1))),
            model.num(s.fit.count),
            s.fit.binding,
            _money(s.total or Decimal(0)),
            _money(s.per_thousand_connection_months or Decimal(0)),
        )
    console.print(table)
    for line in refused:
        console.print(esc(line), highlight=False)


def _report(
    cmp: model.Comparison,
    book: model.PriceBook,
    seed: bool,
    console: Console,
    as_json: bool,
    sizing: tuple[dict[str, Decimal], str],
) -> None:
    w = cmp.workload
    words = {axis: model.summary(w, book, axis) for axis in model.AXES}
    figures = model.seed_figures(book, w) if seed else []
    sizes = model.option3_sizes(w, book)
    if as_json:
        doc = {
            "prices": {**book.data.get("meta", {}), "file": book.origin},
            "workload": asdict(w),
            "sizing": {**sizing[0], "text": sizing[1]},
            "cheapest": cmp.cheapest,
            "option3": _sizes_json(sizes),
            "options": [
                {
                    "key": o.key,
                    "name": o.name,
                    "total": None if o.error else o.total,
                    "per_1000_connection_months": _per_kcm(o, w, book),
                    "error": o.error,
                    "notes": list(o.notes),
                    "items": [{**asdict(i), "cost": i.cost} for i in o.items],
                }
                for o in cmp.options
            ],
            "crossovers": {
                axis: {
                    "text": words[axis].text,
                    "points": [asdict(x) for x in words[axis].crossovers],
                    "ranges": [asdict(r) for r in words[axis].ranges],
                }
                for axis in model.AXES
            },
        }
        if seed:
            doc["seed"] = [asdict(f) for f in figures]
        click.echo(json.dumps(_plain(doc), indent=2))
        return
    meta = {"as_known_on": "?", "basis": "?", **book.data.get("meta", {})}
    region = book.data["regions"][w.region].get("name", w.region)
    header = (
        f"{w.region} ({region}), {model.num(w.days)} days: {w.streams} stream(s), "
        f"{model.num(w.events_per_second)} events/s of {w.event_size} B; free tier "
        f"{'on' if w.free_tier else 'off'}. Prices as known on {meta['as_known_on']} "
        f"({meta['basis']})."
    )
    console.print(f"[bold]longline cost[/] {esc(header)}", highlight=False)
    console.print(esc(sizing[1]), highlight=False)
    table = Table(show_lines=False)
    for column, justify in (("option", "left"), ("line item", "left"), ("quantity", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("unit price", justify="right")
    table.add_column("cost", justify="right")
    for o in cmp.options:
        if o.error:
            table.add_row(
                o.name, f"[red]not priced:[/] {esc(o.error)}", "", "", "", end_section=True
            )
            continue
        for n, i in enumerate(o.items):
            table.add_row(
                o.name if n == 0 else "",
                esc(f"{i.category}: {i.label}"),
                f"{_qty(i.quantity)} {i.unit}",
                model.usd(i.unit_price),
                _money(i.cost),
            )
        mark = " [green]<- cheapest[/]" if o.key in cmp.cheapest else ""
        table.add_row("", f"[bold]total[/]{mark}", "", "", f"[bold]{_money(o.total)}[/]")
        per = _per_kcm(o, w, book)
        table.add_row("", "per 1,000 connection-months", "", "", _money(per or Decimal(0)))
        table.add_section()
    console.print(table)
    notes: dict[str, list[str]] = {}
    for o in cmp.options:
        for note in o.notes:
            notes.setdefault(note, []).append(o.name.split(".")[0])
    for note, which in notes.items():
        console.print(esc(f"  note: {note} (option {', '.join(which)})"), highlight=False)
    _print_sizes(sizes, w, console)
    for summary in words.values():
        console.print(esc(summary.text), highlight=False)
    if seed:
        _print_seed(figures, console)


def _figure(x: Decimal, unit: str) -> str:
    return model.usd(x) if unit == "$" else f"{model.num(x)} {unit}"


def _print_seed(figures: list[model.SeedFigure], console: Console) -> None:
    table = Table(title="The seed's figures next to ours", show_lines=True)
    for column in ("figure", "seed", "ours", "verdict", "arithmetic"):
        table.add_column(column, overflow="fold")
    colours = {"same": "green", "rounded": "yellow", "differs": "red", "no figure": "dim"}
    for f in figures:
        table.add_row(
            esc(f.figure),
            "-" if f.seed is None else _figure(f.seed, f.unit),
            _figure(f.ours, f.unit),
            f"[{colours[f.verdict]}]{f.verdict}[/]",
            esc(f.why),
        )
    console.print(table)


@click.command("cost")
@_workload_options
@click.option(
    "--measurements",
    "measurements_file",
    type=click.Path(dir_okay=False),
    help=f"benchmark results to size servers by [default: {model.DEFAULT_PATH} if present, "
    "else the documented figures]",
)
@click.option(
    "--transport",
    type=click.Choice(model.TRANSPORTS),
    default="ws",
    show_default=True,
    help="whose measured figures size the servers",
)
@click.option("--seed", is_flag=True, help="the seed's scenario, its figures next to ours")
@click.option("--prices", "prices_file", type=click.Path(dir_okay=False), help="price file")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="write FILE.png|svg")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output, exact decimals")
def cost_command(
    measurements_file: str | None,
    transport: str,
    seed: bool,
    prices_file: str | None,
    plot_file: str | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Price Lambda, Lambda + Step Functions, EC2/Fargate + serverless and EC2-only for a workload.

    Every figure is quantity x list price from prices.toml (see docs/cost.md for the formulas);
    servers are sized by longline's measured memory per stream and CPU per event.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        sizing = _sizing(measurements_file, transport, given)
    except model.CostError as exc:
        raise click.BadParameter(str(exc), param_hint="'--measurements'") from exc
    given.update(sizing[0])
    try:
        book = model.load_prices(prices_file)
        base = model.seed_workload() if seed else model.Workload()
        known = {f.name for f in fields(model.Workload)}
        w = replace(base, **{k: v for k, v in given.items() if k in known})
        cmp = model.compare(w, book)
        if plot_file:
            plot(w, book, plot_file, sizing[1])
    except PlotUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    except model.CostError as exc:
        if exc.field == "prices" and prices_file:
            raise click.BadParameter(str(exc), param_hint="'--prices'") from exc
        raise click.UsageError(str(exc)) from exc
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=160)
    _report(cmp, book, seed, console, as_json, sizing)
    if plot_file and not as_json:
        console.print(esc(f"wrote {plot_file}"))
