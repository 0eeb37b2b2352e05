"""The rows' geometries: label and geometry checks, the request CRS of each row (UTM zones right
across the antimeridian), projection, and the sub-pixel rounding that keeps request identity
free of float noise. Used by :func:`xasync.request.build_specs`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from xasync.errors import GeometryError, LabelError
from xasync.grid import PixelGrid, check_resolution, utm_epsg
from xasync.inputs import check_resolution_units, epsg_of

__all__ = [
    "ROUNDING_PX",
    "check_geometries",
    "check_labels",
    "grid_of",
    "lonlat_centroids",
    "project",
    "round_geometries",
    "round_decimals",
    "target_epsgs",
    "utm_epsgs",
]


def check_labels(index: Any) -> list[Any]:
    """The row labels; a missing one (NaN, None, NaT) is a :class:`LabelError`."""
    import pandas as pd

    labels = list(index)
    if not isinstance(index, pd.MultiIndex) and index.dtype != object:  # scalars: vectorised
        missing = np.flatnonzero(np.asarray(index.isna()))
        check: Sequence[int] = [int(missing[0])] if missing.size else []
    else:
        check = range(len(labels))
    for i in check:
        label = labels[i]
        parts = label if isinstance(label, tuple) else (label,)
        if any(np.ndim(v) == 0 and pd.isna(v) for v in parts):
            raise LabelError(
                f"row {i} has a missing label ({label!r}); give every row a label, e.g. "
                "gdf = gdf.reset_index(drop=True)",
            )
    return labels


def check_geometries(geoms: np.ndarray, labels: list[Any]) -> None:
    import shapely

    missing_g = shapely.is_missing(geoms)
    empty = missing_g | shapely.is_empty(geoms)
    for name, bad in (("empty or missing", empty), ("invalid", ~empty & ~shapely.is_valid(geoms))):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            why = "" if name != "invalid" else f" ({shapely.is_valid_reason(geoms[i])})"
            raise GeometryError(
                f"row {labels[i]!r} has an {name} geometry{why}"
                + (f"; {int(bad.sum())} rows in all" if bad.sum() > 1 else ""),
            )
    kinds = shapely.get_type_id(geoms)
    areal = np.isin(kinds, (3, 6))  # Polygon, MultiPolygon
    if not areal.all():
        i = int(np.flatnonzero(~areal)[0])
        raise GeometryError(
            f"row {labels[i]!r} is a {geoms[i].geom_type}; requests need Polygon or MultiPolygon "
            "areas (buffer points/lines first, e.g. gdf.buffer(100) in a metric CRS)",
        )


def target_epsgs(gs: Any, crs: Any) -> np.ndarray:
    """The request CRS of each row: one code, or each row's UTM zone for ``crs="utm"``."""
    if isinstance(crs, str) and crs.lower() == "utm":
        lon, lat = lonlat_centroids(np.asarray(gs.to_crs(4326).array, dtype=object))
        if not (np.isfinite(lon).all() and np.isfinite(lat).all() and (np.abs(lat) <= 90).all()):
            return np.array([utm_epsg(x, y) for x, y in zip(lon, lat, strict=True)])  # raises
        return utm_epsgs(lon, lat)
    target = epsg_of(
        gs.crs if crs is None else crs,
        "the GeoDataFrame's CRS" if crs is None else "crs",
    )
    return np.full(len(gs), target)


def utm_epsgs(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """:func:`xasync.grid.utm_epsg` of finite lon/lat arrays, vectorised (same rules)."""
    lon = np.mod(np.asarray(lon, dtype=float) + 180.0, 360.0) - 180.0
    lat = np.asarray(lat, dtype=float)
    zone = np.clip(np.floor_divide(lon + 180.0, 6.0).astype(np.int64) + 1, 1, 60)
    zone = np.where((lat >= 56.0) & (lat < 64.0) & (lon >= 3.0) & (lon < 12.0), 32, zone)
    svalbard = (lat >= 72.0) & (lat < 84.0) & (lon >= 0.0) & (lon < 42.0)
    odd = np.where(lon < 9.0, 31, np.where(lon < 21.0, 33, np.where(lon < 33.0, 35, 37)))
    zone = np.where(svalbard, odd, zone)
    return np.where(lat >= 0, 32600, 32700) + zone


def _shift_west(c: np.ndarray) -> np.ndarray:
    return np.column_stack([np.where(c[:, 0] < 0, c[:, 0] + 360.0, c[:, 0]), c[:, 1]])


def lonlat_centroids(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lon, lat)`` of lon/lat geometries' centroids, right across the antimeridian.

    A shape whose longitudes span more than 180 degrees is taken to cross the antimeridian
    (a field is never half the globe wide): its negative longitudes are shifted by +360 to a
    continuous range before the centroid is taken, and the result is wrapped back to
    [-180, 180).
    """
    import shapely

    geoms = np.array(geoms, dtype=object)
    bounds = shapely.bounds(geoms)
    wide = (bounds[:, 2] - bounds[:, 0]) > 180.0
    if wide.any():
        geoms[wide] = shapely.transform(geoms[wide], _shift_west)
    centroids = shapely.centroid(geoms)
    lon = shapely.get_x(centroids)
    return ((lon + 180.0) % 360.0) - 180.0, shapely.get_y(centroids)


def project(gs: Any, epsgs: np.ndarray, resolution: Any, labels: list[Any]) -> np.ndarray:
    """Each geometry in its request CRS (2D), grouped by CRS."""
    import shapely

    src_epsg = gs.crs.to_epsg()
    projected = np.empty(len(gs), dtype=object)
    for epsg in np.unique(epsgs):
        sel = epsgs == epsg
        if resolution is not None:
            check_resolution_units(int(epsg), resolution)
        part = gs[sel] if src_epsg == epsg else gs[sel].to_crs(int(epsg))
        projected[sel] = np.asarray(part.array, dtype=object)
    boxes = shapely.bounds(projected)
    if not np.isfinite(boxes).all():
        i = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0])
        raise GeometryError(f"row {labels[i]!r} cannot be projected to EPSG:{int(epsgs[i])}")
    return shapely.force_2d(projected)


#: Coordinates are rounded to a step of at most this fraction of a pixel.
ROUNDING_PX = 1e-3


def round_decimals(pixel_size: float) -> int:
    """Decimals to round coordinates to: a step of at most ``ROUNDING_PX`` of ``pixel_size``.

    ``ceil(-log10(pixel_size * ROUNDING_PX))`` (with a tolerance, so float noise in the pixel
    size cannot flip it): 2 for 10 m pixels, 7 for 0.0001 degree pixels.
    """
    step = float(pixel_size) * ROUNDING_PX
    return int(math.ceil(-math.log10(step) - 1e-6))


def round_geometries(geoms: np.ndarray, resolution: Any, size: Any) -> np.ndarray:
    """Geometries with coordinates rounded to :func:`round_decimals` of their pixel size.

    The pixel size is the resolution's smaller side, or for ``size=(w, h)`` the smaller of
    ``extent / size`` per row (rows whose size is invalid are left for the grid check).
    """
    import shapely

    if resolution is not None:
        return shapely.transform(geoms, _rounder(round_decimals(min(check_resolution(resolution)))))
    b = shapely.bounds(geoms)
    try:
        w, h = float(size[0]), float(size[1])
        pixel = np.minimum((b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h)
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return geoms  # PixelGrid.from_size names the problem
    out = np.array(geoms, dtype=object)
    ok = np.isfinite(pixel) & (pixel > 0)
    decimals = np.array([round_decimals(p) if k else -1 for p, k in zip(pixel, ok, strict=True)])
    for d in np.unique(decimals[ok]):
        sel = decimals == d
        out[sel] = shapely.transform(out[sel], _rounder(int(d)))
    return out


def _rounder(decimals: int) -> Any:
    return lambda c: np.round(c, decimals)


def grid_of(box: Any, epsg: int, resolution: Any, size: Any) -> PixelGrid:
    """The grid of a (rounded) geometry's bounds."""
    if resolution is not None:
        return PixelGrid.from_resolution(box, epsg, resolution)
    return PixelGrid.from_size(box, epsg, size)
