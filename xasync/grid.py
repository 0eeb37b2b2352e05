"""The pixel grid of one request, exactly as the service delivers it."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from affine import Affine

from xasync._contract import MAX_PIXELS_PER_SIDE, MIN_PIXELS_PER_SIDE, OPENGIS_EPSG_PREFIX
from xasync.errors import GridError

logger = logging.getLogger(__name__)

#: A bound closer than this fraction of a pixel to a grid line is taken as on it (float noise).
SNAP_TOLERANCE_PX = 1e-6


@dataclass(frozen=True)
class PixelGrid:
    """A north-up pixel grid: the bbox of the request, its CRS and its size in pixels.

    The transform is computed with the same expression the service uses (pixel size =
    extent / size, origin at the top-left corner), so coordinates match the delivered GeoTIFF
    bit for bit.

    Parameters
    ----------
    epsg : int
        EPSG code of the grid's CRS.
    bbox : tuple of float
        ``(minx, miny, maxx, maxy)`` in that CRS.
    width, height : int
        Size in pixels.

    """

    epsg: int
    bbox: tuple[float, float, float, float]
    width: int
    height: int

    @cached_property
    def transform(self) -> Affine:
        """The affine geotransform (pixel-is-area, origin top-left)."""
        minx, miny, maxx, maxy = self.bbox
        return Affine(
            (maxx - minx) / self.width,
            0.0,
            minx,
            0.0,
            -(maxy - miny) / self.height,
            maxy,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def crs_url(self) -> str:
        """The CRS as the opengis URL the API wants."""
        return f"{OPENGIS_EPSG_PREFIX}{self.epsg}"

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates, west to east (``c + (i + 0.5) * a`` of the transform)."""
        minx, _, maxx, _ = self.bbox
        return _offsets(self.width, (maxx - minx) / self.width) + minx  # a new array

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south (``f + (j + 0.5) * e`` of the transform)."""
        _, miny, _, maxy = self.bbox
        return _offsets(self.height, -(maxy - miny) / self.height) + maxy

    def geotransform(self) -> str:
        """The GDAL geotransform as rioxarray writes it in ``spatial_ref`` (space-separated)."""
        minx, miny, maxx, maxy = self.bbox
        return f"{minx} {(maxx - minx) / self.width} 0.0 {maxy} 0.0 {-(maxy - miny) / self.height}"

    @property
    def crs(self) -> Any:
        """The CRS as a :class:`pyproj.CRS`."""
        from pyproj import CRS

        return CRS.from_epsg(self.epsg)

    @cached_property
    def resolution(self) -> tuple[float, float]:
        """``(resx, resy)``: the pixel size, both positive (``transform.a`` and ``-transform.e``)."""
        minx, miny, maxx, maxy = self.bbox
        return ((maxx - minx) / self.width, (maxy - miny) / self.height)

    @classmethod
    def from_resolution(
        cls,
        bounds: Sequence[float],
        epsg: int,
        resolution: float | Sequence[float],
    ) -> PixelGrid:
        """The grid covering ``bounds`` at ``resolution``, snapped outward to a global grid.

        The bbox is grown to whole multiples of the resolution on a grid anchored at 0 (as
        odc-geo does): bounds already on the grid (within ``SNAP_TOLERANCE_PX`` of a pixel, to
        absorb float noise) stay, others move outward. The size is then an exact integer, so the
        delivered pixel size is the resolution whatever the service's rounding, and neighbouring
        requests at the same resolution share one pixel grid.

        Parameters
        ----------
        bounds : sequence of 4 floats
            ``(minx, miny, maxx, maxy)`` in the CRS ``epsg``.
        epsg : int
            EPSG code of the grid's CRS.
        resolution : float or (float, float)
            Pixel size in CRS units, one number or ``(resx, resy)``; positive.

        Raises
        ------
        GridError
            Non-positive resolution, bad bounds, or more than 10000 px a side.

        """
        resx, resy = check_resolution(resolution)
        minx, miny, maxx, maxy = _check_bounds(bounds)
        kx0, kx1 = snap_outward(minx, maxx, resx)
        ky0, ky1 = snap_outward(miny, maxy, resy)
        width, height = kx1 - kx0, ky1 - ky0
        if max(width, height) > MAX_PIXELS_PER_SIDE:
            fit = smallest_fitting_resolution(bounds, resolution)
            raise GridError(
                f"at resolution {_fmt_res(resx, resy)} the image would be {width} x {height} px, "
                f"more than the {MAX_PIXELS_PER_SIDE} px a side the service allows; use a "
                f"resolution of at least {fit:g} (or split the geometry)",
            )
        return cls(int(epsg), (kx0 * resx, ky0 * resy, kx1 * resx, ky1 * resy), width, height)

    @classmethod
    def from_size(cls, bounds: Sequence[float], epsg: int, size: Sequence[int]) -> PixelGrid:
        """The grid dividing ``bounds`` exactly into ``size = (width, height)`` pixels.

        Raises
        ------
        GridError
            A size outside 1..10000 px a side, or bad bounds.

        """
        if (
            not isinstance(size, Sequence)
            or isinstance(size, str)
            or len(size) != 2
            or not all(_is_int(v) for v in size)
        ):
            raise GridError(f"size must be (width, height) in whole pixels, got {size!r}")
        width, height = int(size[0]), int(size[1])
        for name, v in (("width", width), ("height", height)):
            if not MIN_PIXELS_PER_SIDE <= v <= MAX_PIXELS_PER_SIDE:
                raise GridError(
                    f"size {name} {v} px is outside {MIN_PIXELS_PER_SIDE}..{MAX_PIXELS_PER_SIDE}",
                )
        b = _check_bounds(bounds)
        if b[2] <= b[0] or b[3] <= b[1]:
            raise GridError(f"bounds {tuple(b)} have zero width or height; cannot fit {size}")
        return cls(int(epsg), b, width, height)


def _fmt_res(resx: float, resy: float) -> str:
    return f"{resx:g}" if resx == resy else f"({resx:g}, {resy:g})"


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def check_resolution(resolution: Any) -> tuple[float, float]:
    """``(resx, resy)`` from one number or a pair, both finite and > 0, else GridError."""
    if isinstance(resolution, (int, float, np.number)) and not isinstance(resolution, bool):
        pair = (resolution, resolution)
    elif (
        isinstance(resolution, Sequence)
        and not isinstance(resolution, str)
        and len(resolution) == 2
    ):
        pair = tuple(resolution)
    else:
        raise GridError(f"resolution must be a number or (resx, resy), got {resolution!r}")
    out = []
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise GridError(f"resolution must be numeric, got {resolution!r}")
        v = float(v)
        if not math.isfinite(v) or v <= 0:
            raise GridError(f"resolution must be positive, got {resolution!r}")
        out.append(v)
    return out[0], out[1]


def _check_bounds(bounds: Any) -> tuple[float, float, float, float]:
    try:
        b = tuple(float(v) for v in bounds)
    except (TypeError, ValueError):
        raise GridError(
            f"bounds must be 4 numbers (minx, miny, maxx, maxy), got {bounds!r}",
        ) from None
    if len(b) != 4 or not all(math.isfinite(v) for v in b) or b[2] < b[0] or b[3] < b[1]:
        raise GridError(f"bounds must be finite (minx, miny, maxx, maxy), got {bounds!r}")
    return b  # type: ignore[return-value]


def snap_outward(lo: float, hi: float, res: float) -> tuple[int, int]:
    """Whole-pixel indices ``(k0, k1)`` on the global grid with ``k0*res <= lo``, ``k1*res >= hi``.

    Parameters
    ----------
    lo, hi : float
        The extent along one axis, in CRS units.
    res : float
        The pixel size along that axis.

    Returns
    -------
    tuple of int
        ``(k0, k1)``, ``k1 > k0`` (a zero extent still gets one pixel); an edge within
        ``SNAP_TOLERANCE_PX`` of a pixel boundary snaps to it.

    """
    q0, q1 = lo / res, hi / res
    r0, r1 = round(q0), round(q1)
    k0 = r0 if abs(q0 - r0) <= SNAP_TOLERANCE_PX else math.floor(q0)
    k1 = r1 if abs(q1 - r1) <= SNAP_TOLERANCE_PX else math.ceil(q1)
    if k1 <= k0:  # a degenerate (zero-extent) side still gets one pixel
        k1 = k0 + 1
    return int(k0), int(k1)


def snapped_size(bounds: Sequence[float], resolution: float | Sequence[float]) -> tuple[int, int]:
    """``(width, height)`` that :meth:`PixelGrid.from_resolution` would give (no size limit)."""
    resx, resy = check_resolution(resolution)
    minx, miny, maxx, maxy = _check_bounds(bounds)
    kx0, kx1 = snap_outward(minx, maxx, resx)
    ky0, ky1 = snap_outward(miny, maxy, resy)
    return kx1 - kx0, ky1 - ky0


def smallest_fitting_resolution(
    bounds: Sequence[float],
    resolution: float | Sequence[float],
) -> float:
    """The smallest round resolution (3 significant digits) whose snapped grid fits 10000 px a side.

    Used for the "too many pixels" message: it returns the requested resolution's larger side
    if that already fits.
    """
    resx, resy = check_resolution(resolution)
    if max(snapped_size(bounds, (resx, resy))) <= MAX_PIXELS_PER_SIDE:
        return max(resx, resy)
    minx, miny, maxx, maxy = _check_bounds(bounds)
    res = max(maxx - minx, maxy - miny) / MAX_PIXELS_PER_SIDE
    mag = 10 ** (math.floor(math.log10(res)) - 2)  # steps of the 3rd significant digit
    cand = math.ceil(res / mag - 1e-9) * mag
    for _ in range(100):
        cand = float(f"{cand:.3g}")
        if max(snapped_size(bounds, cand)) <= MAX_PIXELS_PER_SIDE:
            return cand
        cand += mag
    return cand  # pragma: no cover - the outward snap adds at most 2 px, found in a few steps


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone of a point: 326xx north of the equator, 327xx south.

    The Norway (zone 32V) and Svalbard (31X/33X/35X/37X) exceptions are applied. Latitudes
    beyond the UTM range (84 N / 80 S) still get the zone of their longitude; use a polar CRS
    there.
    """
    lon = float(lon)
    lat = float(lat)
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90:
        raise GridError(f"not a lon/lat point: ({lon}, {lat})")
    lon = ((lon + 180.0) % 360.0) - 180.0
    zone = int((lon + 180.0) // 6.0) + 1
    zone = min(max(zone, 1), 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat < 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37
    return (32600 if lat >= 0 else 32700) + zone


def utm_epsg_for(geom_lonlat: Any) -> int:
    """:func:`utm_epsg` of a shapely geometry's centroid (the geometry in lon/lat)."""
    c = geom_lonlat.centroid
    return utm_epsg(c.x, c.y)


def snapped_grids(
    boxes: np.ndarray, epsgs: np.ndarray, resolution: float | Sequence[float], max_side: int
) -> list[PixelGrid | None]:
    """:meth:`PixelGrid.from_resolution` of many bounds at once (numpy), the same grids.

    ``boxes`` is ``(n, 4)``. Rows whose bounds are not finite and ordered, or whose grid would
    be more than ``max_side`` px a side, get None: the caller builds (or refuses) them one by
    one, with the message naming the row.
    """
    resx, resy = check_resolution(resolution)
    b = np.asarray(boxes, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.isfinite(b).all(axis=1) & (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1])
        ok &= (np.abs(b[:, 0::2]) / resx < 2**52).all(axis=1)  # indices exact in int64
        ok &= (np.abs(b[:, 1::2]) / resy < 2**52).all(axis=1)
    b = np.where(ok[:, None], b, 0.0)
    kx0, kx1 = _snap_outward_many(b[:, 0], b[:, 2], resx)
    ky0, ky1 = _snap_outward_many(b[:, 1], b[:, 3], resy)
    width, height = kx1 - kx0, ky1 - ky0
    ok &= np.maximum(width, height) <= max_side
    out: list[PixelGrid | None] = [None] * len(b)
    rows = np.flatnonzero(ok)
    columns = (
        epsgs[rows].astype(np.int64).tolist(),
        (kx0[rows] * resx).tolist(),
        (ky0[rows] * resy).tolist(),
        (kx1[rows] * resx).tolist(),
        (ky1[rows] * resy).tolist(),
        width[rows].tolist(),
        height[rows].tolist(),
    )
    for i, epsg, x0, y0, x1, y1, w, h in zip(rows.tolist(), *columns, strict=True):
        out[i] = PixelGrid(epsg, (x0, y0, x1, y1), w, h)
    return out


def _snap_outward_many(lo: np.ndarray, hi: np.ndarray, res: float) -> tuple[np.ndarray, ...]:
    """:func:`snap_outward` of arrays (integer indices as int64)."""
    q0, q1 = lo / res, hi / res
    r0, r1 = np.round(q0), np.round(q1)  # half to even, as Python's round
    k0 = np.where(np.abs(q0 - r0) <= SNAP_TOLERANCE_PX, r0, np.floor(q0)).astype(np.int64)
    k1 = np.where(np.abs(q1 - r1) <= SNAP_TOLERANCE_PX, r1, np.ceil(q1)).astype(np.int64)
    return k0, np.where(k1 <= k0, k0 + 1, k1)


def _offsets(n: int, step: float) -> np.ndarray:
    """``(i + 0.5) * step`` for ``i < n`` (read-only when cached: the rows of a call share a
    pixel size and a few small widths). Adding the origin gives the same floats as computing
    the centres in full."""
    return _small_offsets(n, step) if n <= _CACHED_UP_TO else _offsets_of(n, step)


#: Longest axis whose offsets are cached (256 entries of up to 16 KiB).
_CACHED_UP_TO = 2048


def _offsets_of(n: int, step: float) -> np.ndarray:
    centres = np.arange(0.5, n)
    centres *= step
    return centres


@functools.lru_cache(maxsize=256)
def _small_offsets(n: int, step: float) -> np.ndarray:
    centres = _offsets_of(n, step)
    centres.flags.writeable = False
    return centres
