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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xasync._contract import MAX_PIXELS_PER_SIDE
from xasync.cost import area_factor, async_pu
from xasync.errors import OptionError
from xasync.grid import SNAP_TOLERANCE_PX, PixelGrid
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
    "MAX_ROW_PX",
    "Pack",
    "PackItem",
    "Part",
    "Plan",
    "PlannedRequest",
    "Tile",
    "Window",
    "check_plan_options",
    "pack_grids",
    "plan_rows",
    "row_grid",
    "sub_grid",
    "tile_grid",
    "tile_windows",
]

#: Default largest side of a packed request in pixels.
DEFAULT_PACK_MAX_PX = 2500
#: Most distinct geometries in one packed request (keeps request bodies small).
MAX_PACK_MEMBERS = 500

#: ``cost(key, width, height) -> PU`` of one request.
CostFunction = Callable[[str, int, int], float]


def default_cost(key: str, width: int, height: int) -> float:
    """The Async PU of a request of 3 input bands and an integer output (the cheapest rules)."""
    del key
    return async_pu(area_factor(width, height), width, height)


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


# --------------------------------------------------------------------------- packs


@dataclass(frozen=True)
class PackItem:
    """One row offered for packing.

    Attributes
    ----------
    key : str
        Everything but the bounds that makes the request body (script, data, time, outputs,
        delivery root...): only items with the same key share a request.
    grid : PixelGrid
        The row's grid.
    sort_key : bytes
        A canonical tie-breaker (e.g. the geometry's WKB): items are ordered by what they are,
        never by their position, so the same rows give the same packs.

    """

    key: str
    grid: PixelGrid
    sort_key: bytes = b""


@dataclass(frozen=True)
class Pack:
    """One request delivering several items (or one: then its grid is the item's).

    Attributes
    ----------
    key : str
        The items' common key.
    grid : PixelGrid
        The request grid: the union of the members' grids, on the same pixel lines.
    members : tuple of int
        Indices of the items (in the input sequence), in canonical order.
    windows : tuple of Window
        Each member's window in :attr:`grid`.

    """

    key: str
    grid: PixelGrid
    members: tuple[int, ...]
    windows: tuple[Window, ...]


def _snapped_indices(grid: PixelGrid) -> tuple[int, int, int, int] | None:
    """``(kx0, ky0, kx1, ky1)`` with bbox = k * resolution, or None if the grid is not snapped."""
    resx, resy = grid.resolution
    out = []
    for v, res in zip(grid.bbox, (resx, resy, resx, resy), strict=True):
        k = round(v / res)
        if abs(v / res - k) > SNAP_TOLERANCE_PX:
            return None
        out.append(int(k))
    kx0, ky0, kx1, ky1 = out
    if (kx1 - kx0, ky1 - ky0) != (grid.width, grid.height):
        return None
    return kx0, ky0, kx1, ky1


@dataclass
class _Group:
    family: tuple
    box: tuple[int, int, int, int]  # kx0, ky0, kx1, ky1
    members: list[int] = field(default_factory=list)
    cost: float = 0.0
    distinct: int = 1  # distinct geometries (identical items share one)


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def pack_grids(
    items: Sequence[PackItem],
    *,
    max_px: int = DEFAULT_PACK_MAX_PX,
    cost: CostFunction = default_cost,
) -> list[Pack]:
    """Group items into requests of at most ``max_px`` a side, where it lowers the cost.

    Greedy clustering on the global pixel grid: items are visited in a canonical order (key,
    CRS, resolution, cell of ``max_px`` px, north to south, west to east, ``sort_key``) and each
    joins the first open group of its family in its own or a neighbouring cell whose union box
    stays within ``max_px`` a side, which has fewer than :data:`MAX_PACK_MEMBERS` distinct
    items, and for which ``cost(union) < cost(group) + cost(item)``; otherwise it starts a
    group. A group's cost is hence below the sum of its members' costs.
    Items whose grid is not snapped to whole multiples of its resolution, or wider than
    ``max_px``, stay alone. Identical items (same key, grid and sort key) share their request.

    Returns
    -------
    list of Pack
        Every item in exactly one pack, packs in canonical order.

    """
    order, alone, boxes = [], [], {}
    for i, item in enumerate(items):
        k = _snapped_indices(item.grid)
        if k is None or max(item.grid.width, item.grid.height) > max_px:
            alone.append(i)
            continue
        boxes[i] = k
        family = (item.key, item.grid.epsg, item.grid.resolution)
        cell = (-(k[3] // max_px), k[0] // max_px)
        order.append(((family, cell, -k[3], k[0], k[1], k[2], item.sort_key), i))
    order.sort()
    groups: list[_Group] = []
    by_cell: dict[tuple, list[int]] = {}  # open groups by the cell they started in
    home: dict[int, tuple] = {}
    same: dict[tuple, int] = {}  # identical items -> their group
    for (family, cell, *_rest), i in order:
        ident = (family, boxes[i], items[i].sort_key)
        if ident in same:
            groups[same[ident]].members.append(i)
            continue
        w, h = items[i].grid.width, items[i].grid.height
        own = cost(items[i].key, w, h)
        chosen = None
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for g in by_cell.get((family, cell[0] + dy, cell[1] + dx), ()):
                    box = _union(groups[g].box, boxes[i])
                    gw, gh = box[2] - box[0], box[3] - box[1]
                    if max(gw, gh) > max_px:
                        continue
                    union_cost = cost(items[i].key, gw, gh)
                    if union_cost < groups[g].cost + own and (chosen is None or g < chosen[0]):
                        chosen = (g, box, union_cost)
        if chosen is None:
            home[len(groups)] = (family, *cell)
            if MAX_PACK_MEMBERS > 1:
                by_cell.setdefault((family, *cell), []).append(len(groups))
            groups.append(_Group(family, boxes[i], [i], own))
            same[ident] = len(groups) - 1
        else:
            g, box, union_cost = chosen
            groups[g].box, groups[g].cost = box, union_cost
            groups[g].members.append(i)
            groups[g].distinct += 1
            same[ident] = g
            if groups[g].distinct >= MAX_PACK_MEMBERS:  # full: no item is offered it again
                by_cell[home[g]].remove(g)
    packs = [_pack_of(items, g, boxes) for g in groups]
    packs += [
        Pack(items[i].key, items[i].grid, (i,), ((0, 0, *items[i].grid.shape),)) for i in alone
    ]
    packs.sort(key=lambda p: (p.key, p.grid.epsg, p.grid.bbox, p.members))
    logger.debug("packed %d items into %d requests", len(items), len(packs))
    return packs


def _pack_of(items: Sequence[PackItem], group: _Group, boxes: dict) -> Pack:
    """The Pack of a group: its grid (the union box) and each member's window in it."""
    kx0, ky0, kx1, ky1 = group.box
    first = items[group.members[0]].grid
    resx, resy = first.resolution
    if len(group.members) == 1:
        grid = first
    else:
        grid = PixelGrid(
            first.epsg, (kx0 * resx, ky0 * resy, kx1 * resx, ky1 * resy), kx1 - kx0, ky1 - ky0
        )
    members = sorted(group.members, key=lambda i: (items[i].sort_key, boxes[i], i))
    windows = []
    for i in members:
        bx0, by0, bx1, by1 = boxes[i]
        win = (ky1 - by1, bx0 - kx0, by1 - by0, bx1 - bx0)
        sub = sub_grid(grid, win)  # the member's grid must be the window of the pack's grid
        if not _same_lines(sub, items[i].grid):
            raise AssertionError(f"member grid {items[i].grid} is not window {win} of {grid}")
        windows.append(win)
    return Pack(items[group.members[0]].key, grid, tuple(members), tuple(windows))


def _same_lines(a: PixelGrid, b: PixelGrid) -> bool:
    """Same size and edges within ``SNAP_TOLERANCE_PX`` of a pixel."""
    if a.shape != b.shape or a.epsg != b.epsg:
        return False
    resx, resy = b.resolution
    tol = (resx, resy, resx, resy)
    return all(
        abs(u - v) <= SNAP_TOLERANCE_PX * r for u, v, r in zip(a.bbox, b.bbox, tol, strict=True)
    )


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
        for row, win in zip(rows, p.windows, strict=True):
            parts[row] = (Part(len(requests), win, (0, 0, *items[row].grid.shape)),)
        requests.append(PlannedRequest(kind, p.grid, rows))
    return Plan(tuple(requests), tuple(parts))


def total_cost(plan: Plan, items: Sequence[PackItem], cost: CostFunction = default_cost) -> float:
    """The summed cost of a plan's requests (each request once)."""
    return math.fsum(cost(items[r.rows[0]].key, r.grid.width, r.grid.height) for r in plan.requests)
