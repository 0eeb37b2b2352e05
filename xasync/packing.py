"""Packs: small rows whose requests differ only by their bounds, bought as one request (pure).

:func:`pack_grids` groups rows (:class:`PackItem`: a key naming everything but the bounds that
makes a request body, a grid, a canonical tie-breaker) into requests whose grid covers them
all, where that is cheaper by the cost function. Used by :func:`xasync.planner.plan_rows`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xasync.cost import area_factor, async_pu
from xasync.grid import SNAP_TOLERANCE_PX, PixelGrid
from xasync.tiles import Window, sub_grid

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PACK_MAX_PX",
    "MAX_PACK_MEMBERS",
    "CostFunction",
    "Pack",
    "PackItem",
    "default_cost",
    "pack_grids",
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
