"""Tiles of a row's pixel grid: windows of at most ``max_request_px`` a side (pure).

A row wider or taller than one request may be is split on its own pixel grid into
``ceil(height / max) x ceil(width / max)`` near-equal tiles, edges on its pixel boundaries, no
gaps, no overlaps; each tile is a :class:`~xasync.grid.PixelGrid` (same CRS and pixel size) and
knows its window ``(row_off, col_off, height, width)`` in the row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from xasync._contract import MAX_PIXELS_PER_SIDE
from xasync.errors import OptionError
from xasync.grid import GridError, PixelGrid, check_resolution, snap_outward, snapped_size

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_REQUEST_PX",
    "MAX_ROW_PX",
    "Tile",
    "Window",
    "row_grid",
    "sub_grid",
    "tile_grid",
    "tile_windows",
]

#: Default largest request side in pixels (the service's limit).
DEFAULT_MAX_REQUEST_PX = MAX_PIXELS_PER_SIDE
#: Largest side of a row's grid when tiling (a sanity cap: 2000 km at 10 m).
MAX_ROW_PX = 200_000

#: ``(row_off, col_off, height, width)`` in pixels.
Window = tuple[int, int, int, int]


def row_grid(bounds: Sequence[float], epsg: int, resolution: float | Sequence[float]) -> PixelGrid:
    """:meth:`PixelGrid.from_resolution` without the 10000 px limit (the row will be tiled).

    Raises
    ------
    xasync.grid.GridError
        Bad bounds or resolution, or more than :data:`MAX_ROW_PX` a side.

    """
    width, height = snapped_size(bounds, resolution)
    if max(width, height) <= MAX_PIXELS_PER_SIDE:
        return PixelGrid.from_resolution(bounds, epsg, resolution)
    if max(width, height) > MAX_ROW_PX:
        raise GridError(
            f"the image would be {width} x {height} px, more than {MAX_ROW_PX} px a side even "
            "when tiled; use a coarser resolution or split the geometry",
        )
    resx, resy = check_resolution(resolution)
    kx0, _ = snap_outward(float(bounds[0]), float(bounds[2]), resx)  # as from_resolution snaps
    ky0, _ = snap_outward(float(bounds[1]), float(bounds[3]), resy)
    bbox = (kx0 * resx, ky0 * resy, (kx0 + width) * resx, (ky0 + height) * resy)
    return PixelGrid(int(epsg), bbox, width, height)


@dataclass(frozen=True)
class Tile:
    """One tile of a row: its own grid and its window in the row's grid.

    Attributes
    ----------
    grid : PixelGrid
        Same CRS and pixel size as the row; its transform is the row's shifted by the window.
    window : Window
        ``(row_off, col_off, height, width)`` in the row's grid.
    index : (int, int)
        ``(tile row, tile column)``, north-west first.

    """

    grid: PixelGrid
    window: Window
    index: tuple[int, int]


def _splits(total: int, max_side: int) -> list[tuple[int, int]]:
    """``[(offset, length)]``: ``total`` in ``ceil(total / max_side)`` near-equal parts."""
    n = -(-total // max_side)
    base, extra = divmod(total, n)
    out, off = [], 0
    for i in range(n):
        length = base + (1 if i < extra else 0)
        out.append((off, length))
        off += length
    return out


def tile_windows(height: int, width: int, max_side: int) -> list[Window]:
    """The tile windows of a ``height`` x ``width`` grid, row-major, each at most ``max_side``.

    Tiles of one tile row share their height, of one tile column their width; sizes differ by
    at most one pixel along an axis.
    """
    if height < 1 or width < 1 or max_side < 1:
        raise OptionError(f"cannot tile {height}x{width} px with tiles of {max_side} px")
    return [(r, c, h, w) for r, h in _splits(height, max_side) for c, w in _splits(width, max_side)]


def sub_grid(grid: PixelGrid, window: Window) -> PixelGrid:
    """The grid of ``window`` of ``grid``: same CRS and pixel size, edges on its pixel lines.

    Edges are ``origin + offset * pixel size``; a window reaching the grid's edge takes that
    edge itself, so a window covering the whole grid is the grid.
    """
    row_off, col_off, height, width = window
    if (
        min(row_off, col_off) < 0
        or min(height, width) < 1
        or row_off + height > grid.height
        or col_off + width > grid.width
    ):
        raise OptionError(f"window {window} is not inside a {grid.height}x{grid.width} grid")
    minx, miny, maxx, maxy = grid.bbox
    t = grid.transform

    def x_at(col: int) -> float:
        return minx if col == 0 else maxx if col == grid.width else minx + col * t.a

    def y_at(row: int) -> float:
        return maxy if row == 0 else miny if row == grid.height else maxy + row * t.e

    bbox = (x_at(col_off), y_at(row_off + height), x_at(col_off + width), y_at(row_off))
    return PixelGrid(grid.epsg, bbox, width, height)


def tile_grid(grid: PixelGrid, max_request_px: int = DEFAULT_MAX_REQUEST_PX) -> list[Tile]:
    """Split ``grid`` into tiles of at most ``max_request_px`` a side (one tile if it fits).

    Tiles cover the grid with no gap and no overlap, edges on its pixel boundaries.
    """
    wins = tile_windows(grid.height, grid.width, max_request_px)
    ncols = -(-grid.width // max_request_px)
    return [
        Tile(sub_grid(grid, w), w, divmod(i, ncols)) if len(wins) > 1 else Tile(grid, w, (0, 0))
        for i, w in enumerate(wins)
    ]
