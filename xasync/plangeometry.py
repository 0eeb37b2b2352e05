"""The geometry a tile's or a pack's request sends (as WKB): the row's, or the members'.

A request's geometry is part of its identity (its token), so these functions are pinned: the
same rows give the same bytes in every version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from xasync.grid import PixelGrid

logger = logging.getLogger(__name__)

__all__ = ["CLIP_ABOVE_COORDS", "pack_geometries", "tile_geometry"]

#: Geometries with more vertices than this are clipped to each tile (smaller request bodies).
CLIP_ABOVE_COORDS = 5000


def tile_geometry(geometry_wkb: bytes, grid: PixelGrid) -> bytes:
    """The geometry sent with a tile: the row's, clipped to the tile's box (grown by a pixel)
    only when it is big (:data:`CLIP_ABOVE_COORDS`).

    Clipping adds vertices on the edges it cuts, with float noise: a pixel centre lying exactly
    on such an edge could change sides, so small geometries are sent whole (exact).
    """
    import shapely

    geom = shapely.from_wkb(geometry_wkb)
    if shapely.get_num_coordinates(geom) <= CLIP_ABOVE_COORDS:
        return geometry_wkb
    resx, resy = grid.resolution
    minx, miny, maxx, maxy = grid.bbox
    clipped = shapely.clip_by_rect(geom, minx - resx, miny - resy, maxx + resx, maxy + resy)
    clipped = shapely.make_valid(clipped) if not shapely.is_valid(clipped) else clipped
    polys = [g for g in shapely.get_parts(clipped) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:  # nothing of the row in this tile: its pixels are all outside (sent as is)
        return geometry_wkb
    return shapely.to_wkb(shapely.union_all(polys))


def pack_geometries(members: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Per pack, its members' geometries (WKB) as one valid (Multi)Polygon, as WKB.

    The distinct geometries of a pack in canonical order (sorted WKB), their polygons side by
    side when that is valid (fields that do not overlap), else their union (much slower);
    normalised. All packs are parsed, assembled and written at once.
    """
    import shapely

    if not members:
        return []
    wkbs: list[bytes] = []
    owner: list[int] = []
    for p, geoms in enumerate(members):
        distinct = sorted(set(geoms))
        wkbs += distinct
        owner += [p] * len(distinct)
    parts, part_of = shapely.get_parts(shapely.from_wkb(wkbs), return_index=True)
    pack_of_part = np.asarray(owner, dtype=np.intp)[part_of]
    if len(np.unique(pack_of_part)) < len(members):  # a pack without polygons: one by one
        groups = [parts[pack_of_part == p] for p in range(len(members))]
        merged = np.array([shapely.multipolygons(g) for g in groups], dtype=object)
    else:
        merged = shapely.multipolygons(parts, indices=pack_of_part)
    for p in np.flatnonzero(~shapely.is_valid(merged)).tolist():
        merged[p] = shapely.union_all(parts[pack_of_part == p])
    return list(shapely.to_wkb(shapely.normalize(merged)))
