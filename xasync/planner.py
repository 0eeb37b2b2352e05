"""Rows -> requests and back: tiles beyond ``max_request_px``, packs of small rows (pure).

A row has one pixel grid (what the user gets). The planner decides which requests deliver it:

- **one request** (the default): the request's grid is the row's grid;
- **tiles**: a row wider or taller than ``max_request_px`` is split on its own pixel grid into
  tiles at most ``max_request_px`` a side (:func:`tile_grid`), each one request;
- **packs** (``pack=True``): small rows whose requests differ only by their bounds share one
  request whose grid covers them all (:func:`pack_grids`), when that is cheaper.

Either way a row is a list of :class:`Part`: a window of a request's grid copied to a window of
the row's grid. Parts of one row never overlap and cover its grid exactly. Windows are
``(row_off, col_off, height, width)`` in pixels.

Nothing here touches the network, the request bodies or xarray: the inputs are grids, a key
naming everything else that makes a request body, and a cost function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from xasync._contract import MAX_PIXELS_PER_SIDE
from xasync.errors import OptionError
from xasync.grid import PixelGrid
from xasync.packing import (
    DEFAULT_PACK_MAX_PX,
    MAX_PACK_MEMBERS,
    CostFunction,
    Pack,
    PackItem,
    default_cost,
    pack_grids,
)
from xasync.tiles import (
    DEFAULT_MAX_REQUEST_PX,
    MAX_ROW_PX,
    Tile,
    Window,
    row_grid,
    sub_grid,
    tile_grid,
    tile_windows,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_REQUEST_PX",
    "DEFAULT_PACK_MAX_PX",
    "MAX_PACK_MEMBERS",
    "MAX_ROW_PX",
    "Pack",
    "PackItem",
    "Part",
    "Plan",
    "PlannedRequest",
    "Tile",
    "Window",
    "check_plan_options",
    "default_cost",
    "pack_grids",
    "plan_rows",
    "row_grid",
    "sub_grid",
    "tile_grid",
    "tile_windows",
]

# --------------------------------------------------------------------------- options


def _side_option(name: str, value: object, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise OptionError(f"{name} must be a whole number of pixels in 1..{upper}, got {value!r}")
    return int(value)


def check_plan_options(
    max_request_px: object = DEFAULT_MAX_REQUEST_PX,
    pack: object = False,
    pack_max_px: object = DEFAULT_PACK_MAX_PX,
) -> tuple[int, bool, int]:
    """Validate the planning keywords of ``process``/``estimate``.

    Returns
    -------
    (int, bool, int)
        ``(max_request_px, pack, pack_max_px)``, the last at most ``max_request_px``.

    Raises
    ------
    xasync.inputs.OptionError
        A size outside 1..10000 px or a ``pack`` that is not a bool.

    """
    max_px = _side_option("max_request_px", max_request_px, MAX_PIXELS_PER_SIDE)
    if not isinstance(pack, bool):
        raise OptionError(f"pack must be True or False, got {pack!r}")
    cap = _side_option("pack_max_px", pack_max_px, MAX_PIXELS_PER_SIDE)
    return max_px, pack, min(cap, max_px)  # a pack is a request: never above max_request_px


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Part:
    """A window of one request's grid that fills a window of a row's grid (same size).

    Attributes
    ----------
    request : int
        Index of the request in :attr:`Plan.requests`.
    source : Window
        The window in the request's grid.
    target : Window
        The window in the row's grid.

    """

    request: int
    source: Window
    target: Window


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a plan.

    Attributes
    ----------
    kind : {"row", "tile", "pack"}
        A whole row, one tile of a row, or several rows.
    grid : PixelGrid
        The request's grid.
    rows : tuple of int
        The rows it delivers (a pack may deliver several; identical rows share one).
    tile : (int, int) or None
        ``(tile row, tile column)`` of a tile.

    """

    kind: str
    grid: PixelGrid
    rows: tuple[int, ...]
    tile: tuple[int, int] | None = None


@dataclass(frozen=True)
class Plan:
    """Which requests deliver which rows.

    Attributes
    ----------
    requests : tuple of PlannedRequest
    parts : tuple of tuple of Part
        Per row (in input order), the parts that cover its grid, row-major.

    """

    requests: tuple[PlannedRequest, ...]
    parts: tuple[tuple[Part, ...], ...]


def plan_rows(
    items: Sequence[PackItem],
    *,
    max_request_px: int = DEFAULT_MAX_REQUEST_PX,
    pack: bool = False,
    pack_max_px: int = DEFAULT_PACK_MAX_PX,
    cost: CostFunction = default_cost,
) -> Plan:
    """The requests of a set of rows: tiles for rows over ``max_request_px``, packs if asked.

    Parameters
    ----------
    items : sequence of PackItem
        One per row: its request key, grid and canonical tie-breaker.
    max_request_px : int
        Largest request side; bigger rows are tiled (never packed).
    pack : bool
        Pack small rows (:func:`pack_grids`) where it is cheaper.
    pack_max_px : int
        Largest side of a packed request.
    cost : callable
        ``cost(key, width, height) -> PU``, used to decide packs.

    Returns
    -------
    Plan

    """
    max_request_px, pack, pack_max_px = check_plan_options(max_request_px, pack, pack_max_px)
    requests: list[PlannedRequest] = []
    parts: list[tuple[Part, ...]] = [()] * len(items)
    small = []
    for i, item in enumerate(items):
        g = item.grid
        if max(g.width, g.height) <= max_request_px:
            small.append(i)
            continue
        row_parts = []
        for tile in tile_grid(g, max_request_px):
            row_parts.append(Part(len(requests), (0, 0, *tile.grid.shape), tile.window))
            requests.append(PlannedRequest("tile", tile.grid, (i,), tile.index))
        parts[i] = tuple(row_parts)
    if pack:
        packs = pack_grids([items[i] for i in small], max_px=pack_max_px, cost=cost)
    else:
        packs = [
            Pack(items[i].key, items[i].grid, (k,), ((0, 0, *items[i].grid.shape),))
            for k, i in enumerate(small)
        ]
    for p in packs:
        rows = tuple(small[k] for k in p.members)
        kind = "pack" if len(rows) > 1 else "row"
        k = len(requests)
        for row, win in zip(rows, p.windows, strict=True):  # a window has the row's shape
            parts[row] = (_new_part(k, win, (0, 0, win[2], win[3])),)
        requests.append(PlannedRequest(kind, p.grid, rows))
    return Plan(tuple(requests), tuple(parts))


def _new_part(request: int, source: Window, target: Window) -> Part:
    """``Part(request, source, target)`` without the frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` a field, for each of 100,000 rows); the same object (tested)."""
    part = object.__new__(Part)
    part.__dict__.update(request=request, source=source, target=target)
    return part


def total_cost(plan: Plan, items: Sequence[PackItem], cost: CostFunction = default_cost) -> float:
    """The summed cost of a plan's requests (each request once)."""
    return math.fsum(cost(items[r.rows[0]].key, r.grid.width, r.grid.height) for r in plan.requests)
