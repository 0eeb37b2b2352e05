"""Packs: small rows whose requests differ only by their bounds, bought as one request (pure).

:func:`pack_grids` groups rows (:class:`PackItem`: a key naming everything but the bounds that
makes a request body, a grid, a canonical tie-breaker) into requests whose grid covers them
all, where that is cheaper by the cost function. Used by :func:`xasync.planner.plan_rows`.

The items' grids are read into arrays once (:func:`_item_arrays`: snapped pixel indices,
families, the canonical visiting order, all with numpy); only the greedy choice of a group,
which depends on the groups made before, is a loop, over plain integers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xasync.cost import area_factor, async_pu
from xasync.grid import SNAP_TOLERANCE_PX, PixelGrid
from xasync.tiles import Window

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


@dataclass(frozen=True)
class _Arrays:
    """The items' grids as arrays (one entry per item)."""

    bbox: np.ndarray  # (n, 4) float
    res: np.ndarray  # (n, 2) float: resx, resy as PixelGrid.resolution computes them
    k: np.ndarray  # (n, 4) int: kx0, ky0, kx1, ky1 (bbox / resolution) where snapped
    packable: np.ndarray  # (n,) bool: snapped and at most max_px a side
    family: np.ndarray  # (n,) int: rank of (key, epsg, resolution) in sorted order
    rank: np.ndarray  # (n,) int: rank of sort_key in sorted order


def _ranks(values: list) -> np.ndarray:
    """Each value's rank among the distinct values, in sorted order (equal values, equal rank)."""
    index = {v: r for r, v in enumerate(sorted(set(values)))}
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


#: Largest array of padded sort keys ranked with numpy (bytes); beyond, Python sorts them.
_MAX_KEY_BYTES = 64 * 2**20


def _key_ranks(keys: list) -> np.ndarray:
    """:func:`_ranks` of the sort keys; bytes are ranked with numpy.

    Bytes order as numpy's fixed-width ``S`` strings (byte by byte, padded with zeros), then
    their length (a key equal to another but for trailing zeros is the shorter): the order of
    ``sorted``.
    """
    n = len(keys)
    if not n or not all(type(k) is bytes for k in keys):
        return _ranks(keys)
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    width = max(1, int(lengths.max()))
    if width * n > _MAX_KEY_BYTES:
        return _ranks(keys)
    padded = np.array(keys, dtype=f"S{width}")
    order = np.lexsort((lengths, padded))
    padded, lengths = padded[order], lengths[order]
    new = np.r_[True, (padded[1:] != padded[:-1]) | (lengths[1:] != lengths[:-1])]
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.cumsum(new) - 1
    return ranks


def _item_arrays(items: Sequence[PackItem], max_px: int) -> _Arrays:
    """Snapped pixel indices, families and canonical ranks of all items at once.

    A bound is snapped when it is within ``SNAP_TOLERANCE_PX`` of a whole multiple of the
    resolution (``round`` halves to even, as ``np.rint``) and the indices span the grid's size.
    """
    n = len(items)
    grids = [it.grid for it in items]
    bbox = np.array([g.bbox for g in grids], dtype=np.float64).reshape(n, 4)
    size = np.array([(g.width, g.height) for g in grids], dtype=np.int64).reshape(n, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (bbox[:, 2:] - bbox[:, :2]) / size
        q = bbox / np.tile(res, 2)
        k_float = np.rint(q)
        near = (np.abs(q - k_float) <= SNAP_TOLERANCE_PX) & (np.abs(k_float) < 2.0**53)
        snapped = np.asarray(np.isfinite(q).all(axis=1) & near.all(axis=1))
    k = np.where(snapped[:, None], k_float, 0).astype(np.int64)
    snapped &= ((k[:, 2:] - k[:, :2]) == size).all(axis=1)
    packable = snapped & (size.max(axis=1) <= max_px)
    res_list = res.tolist()
    families = [(it.key, g.epsg, tuple(r)) for it, g, r in zip(items, grids, res_list, strict=True)]
    return _Arrays(
        bbox, res, k, packable, _ranks(families), _key_ranks([it.sort_key for it in items])
    )


def _visiting_order(a: _Arrays, max_px: int) -> np.ndarray:
    """Packable items in canonical order: family, cell of ``max_px`` px (north to south, west
    to east), north edge (north first), west, south and east edges, sort key, position."""
    picked = np.flatnonzero(a.packable)
    k = a.k[picked]
    cell_y, cell_x = -(k[:, 3] // max_px), k[:, 0] // max_px
    keys = (picked, a.rank[picked], k[:, 2], k[:, 1], k[:, 0], -k[:, 3], cell_x, cell_y)
    return picked[np.lexsort((*keys, a.family[picked]))]


def _greedy_groups(
    items: Sequence[PackItem], a: _Arrays, max_px: int, cost: CostFunction
) -> np.ndarray:
    """The group of each packable item (-1 for the others), groups numbered as they open.

    Each item (in :func:`_visiting_order`) joins the first open group of its family started in
    its own or a neighbouring cell whose union box stays within ``max_px`` a side and costs
    less than the group and the item apart; else it opens a group. Identical items (same
    family, box and sort key) join the group of the first. A group holding
    :data:`MAX_PACK_MEMBERS` distinct items is closed.
    """
    order = _visiting_order(a, max_px)
    cap = MAX_PACK_MEMBERS
    prices: dict[tuple[str, int, int], float] = {}
    group = [-1] * len(items)
    state = _Open()
    boxes, costs = state.boxes, state.costs
    same: dict[tuple[int, ...], int] = {}
    rows = zip(
        order.tolist(), a.family[order].tolist(), a.k[order].tolist(), a.rank[order].tolist()
    )
    for i, fam, (x0, y0, x1, y1), rank in rows:
        ident = (fam, x0, y0, x1, y1, rank)
        chosen = same.get(ident, -1)
        if chosen < 0:
            key = items[i].key
            own = prices.get((key, x1 - x0, y1 - y0))
            if own is None:
                own = prices[(key, x1 - x0, y1 - y0)] = cost(key, x1 - x0, y1 - y0)
            cell = (fam, -(y1 // max_px), x0 // max_px)
            for g in state.candidates(cell):  # the first group (lowest number) taking it
                b0, b1, b2, b3 = boxes[g]
                u0, v0 = (b0 if b0 < x0 else x0), (b1 if b1 < y0 else y0)
                u1, v1 = (b2 if b2 > x1 else x1), (b3 if b3 > y1 else y1)
                if u1 - u0 > max_px or v1 - v0 > max_px:
                    continue
                union = prices.get((key, u1 - u0, v1 - v0))
                if union is None:
                    union = prices[(key, u1 - u0, v1 - v0)] = cost(key, u1 - u0, v1 - v0)
                if union < costs[g] + own:
                    chosen = g
                    state.join(g, (u0, v0, u1, v1), union, cap)
                    break
            if chosen < 0:
                chosen = state.start(cell, (x0, y0, x1, y1), own, cap)
            same[ident] = chosen
        group[i] = chosen
    return np.asarray(group, dtype=np.int64)


class _Open:
    """The groups of :func:`_greedy_groups` and the open ones by the cell they started in."""

    def __init__(self) -> None:
        self.boxes: list[tuple[int, int, int, int]] = []  # kx0, ky0, kx1, ky1
        self.costs: list[float] = []
        self.distinct: list[int] = []
        self.home: list[tuple[int, int, int]] = []
        self.open_in: dict[tuple[int, int, int], list[int]] = {}
        self._cached: tuple[tuple[int, int, int], list[int]] | None = None

    def candidates(self, cell: tuple[int, int, int]) -> list[int]:
        """Open groups started in ``cell`` or a neighbour, lowest number first (cached until
        a group opens or closes)."""
        if self._cached is not None and self._cached[0] == cell:
            return self._cached[1]
        fam, cy, cx = cell
        near = [
            g
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            for g in self.open_in.get((fam, cy + dy, cx + dx), ())
        ]
        near.sort()
        self._cached = (cell, near)
        return near

    def start(
        self, cell: tuple[int, int, int], box: tuple[int, int, int, int], cost: float, cap: int
    ) -> int:
        g = len(self.boxes)
        self.boxes.append(box)
        self.costs.append(cost)
        self.distinct.append(1)
        self.home.append(cell)
        if cap > 1:
            self.open_in.setdefault(cell, []).append(g)
            self._cached = None
        return g

    def join(self, g: int, box: tuple[int, int, int, int], cost: float, cap: int) -> None:
        self.boxes[g], self.costs[g] = box, cost
        self.distinct[g] += 1
        if self.distinct[g] >= cap:  # full: no item is offered it again
            self.open_in[self.home[g]].remove(g)
            self._cached = None


def _group_grids(
    items: Sequence[PackItem], a: _Arrays, first: np.ndarray, box: np.ndarray, count: np.ndarray
) -> list[PixelGrid]:
    """Each group's grid: its only item's grid, or the union box on its items' pixel lines."""
    res = a.res[first]
    bbox = (box * np.tile(res, 2)).tolist()
    size = (box[:, 2:] - box[:, :2]).tolist()
    out = []
    for i, n, b, (w, h) in zip(first.tolist(), count.tolist(), bbox, size, strict=True):
        g = items[i].grid
        out.append(g if n == 1 else PixelGrid(g.epsg, (b[0], b[1], b[2], b[3]), w, h))
    return out


def _check_windows(a: _Arrays, members: np.ndarray, grids: np.ndarray, win: np.ndarray) -> None:
    """Each member's grid must be its window of its group's grid (edges within the snapping
    tolerance): the window's edges are computed as :func:`xasync.tiles.sub_grid` does."""
    minx, miny, maxx, maxy = grids[:, 0], grids[:, 1], grids[:, 2], grids[:, 3]
    width, height = grids[:, 4], grids[:, 5]
    step_x, step_y = (maxx - minx) / width, -(maxy - miny) / height

    def x_at(col: np.ndarray) -> np.ndarray:
        return np.where(col == 0, minx, np.where(col == width, maxx, minx + col * step_x))

    def y_at(row: np.ndarray) -> np.ndarray:
        return np.where(row == 0, maxy, np.where(row == height, miny, maxy + row * step_y))

    r, c, h, w = win.T
    edges = np.stack([x_at(c), y_at(r + h), x_at(c + w), y_at(r)], axis=1)
    tol = SNAP_TOLERANCE_PX * np.tile(a.res[members], 2)
    bad = np.flatnonzero((np.abs(edges - a.bbox[members]) > tol).any(axis=1))
    if bad.size:
        j = int(bad[0])
        raise AssertionError(f"member grid bbox {a.bbox[members[j]]} is not window {win[j]}")


def _packs_of_groups(items: Sequence[PackItem], a: _Arrays, group: np.ndarray) -> list[Pack]:
    """The Pack of each group: its grid and its members (ordered by sort key, box, position)
    with their windows."""
    members = np.flatnonzero(group >= 0)
    if not members.size:
        return []
    k, g = a.k[members], group[members]
    order = np.lexsort((members, k[:, 3], k[:, 2], k[:, 1], k[:, 0], a.rank[members], g))
    members, k, g = members[order], k[order], g[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    box = np.stack(
        [
            np.minimum.reduceat(k[:, j], starts) if j < 2 else np.maximum.reduceat(k[:, j], starts)
            for j in range(4)
        ],
        axis=1,
    )
    count = np.diff(np.r_[starts, len(members)])
    grids = _group_grids(items, a, members[starts], box, count)
    at = np.repeat(np.arange(len(starts)), count)
    gb = box[at]
    win = np.stack(
        [gb[:, 3] - k[:, 3], k[:, 0] - gb[:, 0], k[:, 3] - k[:, 1], k[:, 2] - k[:, 0]], 1
    )
    frame = np.array([(*gr.bbox, gr.width, gr.height) for gr in grids], dtype=np.float64)
    _check_windows(a, members, frame[at], win)
    ends = np.r_[starts[1:], len(members)].tolist()
    member_list, win_list = members.tolist(), list(map(tuple, win.tolist()))
    return [
        Pack(items[member_list[s]].key, grid, tuple(member_list[s:e]), tuple(win_list[s:e]))
        for s, e, grid in zip(starts.tolist(), ends, grids, strict=True)
    ]


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
    ``cost`` must be a function of its arguments only: each distinct call is made once.

    Returns
    -------
    list of Pack
        Every item in exactly one pack, packs in canonical order.

    """
    if not items:
        return []
    arrays = _item_arrays(items, max_px)
    group = _greedy_groups(items, arrays, max_px, cost)
    packs = _packs_of_groups(items, arrays, group)
    for i in np.flatnonzero(~arrays.packable).tolist():
        grid = items[i].grid
        packs.append(Pack(items[i].key, grid, (i,), ((0, 0, grid.height, grid.width),)))
    packs.sort(key=lambda p: (p.key, p.grid.epsg, p.grid.bbox, p.members))
    logger.debug("packed %d items into %d requests", len(items), len(packs))
    return packs
