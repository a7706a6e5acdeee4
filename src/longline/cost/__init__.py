"""What each way of running a connection manager on AWS costs for a given workload.

The seed compares four options by a single minimum price each; a real choice depends on the
number of streams, the event rate and size, and the charges around the compute (requests, state
transitions, store writes, storage, public addresses). The model prices all of them as line
items with exact ``Decimal`` arithmetic from the packaged ``prices.toml``; it rounds nothing and
does no I/O beyond reading that file. docs/cost.md states every formula.

This module is the public face; the model lives in small modules named for what they do:

- ``prices``: the price file (``load_prices``, ``PriceBook``, the errors)
- ``workload``: the inputs (``Workload``) and their validation
- ``result``: line items, option totals, the comparison
- ``context``, ``lines``: per-workload figures and the line items options share
- ``options``: one function per option, and ``compare``
- ``sweep``, ``ranges``: costs along an axis, crossovers, cheapest ranges in words
- ``seed``: the seed's table, figure by figure
- ``measurements``, ``capacity``, ``sizes``: longline's measured memory per stream and CPU per
  event, what one server holds with them (memory or CPU binding), option 3 shape by shape
"""

from __future__ import annotations

from longline.cost.capacity import Fit, per_thousand_connection_months
from longline.cost.measurements import (
    DEFAULT_PATH,
    TRANSPORTS,
    Measurements,
    documented,
    load_measurements,
)
from longline.cost.numbers import GIB, MILLION, ceil, num, usd
from longline.cost.options import BUILDERS, compare
from longline.cost.prices import CostError, PriceBook, UnknownPrice, load_prices
from longline.cost.ranges import (
    MAX_RANGES,
    TOLERANCE,
    CheapestRange,
    Summary,
    cheapest_ranges,
    in_words,
    merge_ranges,
    summary,
)
from longline.cost.result import OPTIONS, Comparison, LineItem, OptionCost
from longline.cost.seed import SEED_HANDOFFS_TEXT, SeedFigure, seed_figures, seed_workload
from longline.cost.sizes import Size, option3_sizes
from longline.cost.sweep import AXES, GRID_DENSITY, Crossover, axis_grid, crossovers, sweep
from longline.cost.workload import ARCHS, FARGATE_SHAPES, WRITE_MODES, Workload, validate

__all__ = [
    "ARCHS",
    "AXES",
    "BUILDERS",
    "DEFAULT_PATH",
    "FARGATE_SHAPES",
    "GIB",
    "GRID_DENSITY",
    "MAX_RANGES",
    "MILLION",
    "OPTIONS",
    "SEED_HANDOFFS_TEXT",
    "TOLERANCE",
    "TRANSPORTS",
    "WRITE_MODES",
    "CheapestRange",
    "Comparison",
    "CostError",
    "Crossover",
    "Fit",
    "LineItem",
    "Measurements",
    "OptionCost",
    "PriceBook",
    "SeedFigure",
    "Size",
    "Summary",
    "UnknownPrice",
    "Workload",
    "axis_grid",
    "ceil",
    "cheapest_ranges",
    "compare",
    "crossovers",
    "documented",
    "in_words",
    "load_measurements",
    "load_prices",
    "merge_ranges",
    "num",
    "option3_sizes",
    "per_thousand_connection_months",
    "seed_figures",
    "seed_workload",
    "summary",
    "sweep",
    "usd",
    "validate",
]
