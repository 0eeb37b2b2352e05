"""Deterministic synthetic scenes: what the emulator's "satellite" sees.

The formula (also in ``docs/emulator.md``), for an input band named ``name`` at a pixel whose
centre is at longitude ``lon`` and latitude ``lat`` (degrees, WGS 84), acquired on ``date``:

- pixel centres on the request grid: ``x = minx + (col + 0.5) * a``, ``y = maxy + (row + 0.5) * e``
  with ``a = (maxx - minx) / width`` and ``e = -(maxy - miny) / height``, transformed to lon/lat
  with ``pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)``;
- ``k = zlib.crc32(name.encode("utf-8")) % 16``;
- ``doy`` = day of the year of ``date`` (1..366);
- ``base`` = the typical reflectance of green vegetation in that Sentinel-2 band
  (:data:`VEGETATION`: B04 0.05, B08 0.33, ...), or ``0.1 + 0.02*k`` for any other band name;
- ``v = (0.5 + 0.5*sin(50*radians(lon) + k)) * (0.5 + 0.5*cos(50*radians(lat)))`` (0..1);
- reflectance ``R = base*(0.5 + v) + 0.05*doy/366`` (so NDVI from B04/B08 lies around
  0.4..0.9, varying across a field, as over crops in summer);
- with ``units: "DN"`` requested for the band: ``floor(R*10000 + 0.5)``; any other unit, or none:
  ``R``;
- ``dataMask`` is 1 where the pixel centre lies inside or on the request geometry (everywhere
  when there is no geometry) and 0 elsewhere; every other band is 0 where ``dataMask`` is 0.

The acquisition ``date`` is the middle of the first ``input.data[].dataFilter.timeRange``
(``from + (to - from) / 2``), or :data:`DEFAULT_DATE` when no time range is given.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timezone

import numpy as np

logger = logging.getLogger(__name__)

#: Acquisition date when the request has no time range.
DEFAULT_DATE = datetime(2020, 6, 15, tzinfo=timezone.utc)


def acquisition_date(time_from: datetime | None, time_to: datetime | None) -> datetime:
    """Middle of the time range, or :data:`DEFAULT_DATE`."""
    if time_from is None or time_to is None:
        return DEFAULT_DATE
    return time_from + (time_to - time_from) / 2


#: Typical top-of-canopy reflectance of green vegetation per Sentinel-2 band (the scene's base).
VEGETATION = {
    "B01": 0.03,
    "B02": 0.04,
    "B03": 0.07,
    "B04": 0.05,
    "B05": 0.11,
    "B06": 0.25,
    "B07": 0.30,
    "B08": 0.33,
    "B8A": 0.35,
    "B09": 0.35,
    "B10": 0.01,
    "B11": 0.20,
    "B12": 0.10,
}


def band_index(name: str) -> int:
    """The per-band constant ``k`` of the formula."""
    return zlib.crc32(name.encode("utf-8")) % 16


def reflectance(name: str, lon: np.ndarray, lat: np.ndarray, date: datetime) -> np.ndarray:
    """Reflectance of band ``name`` at ``lon``/``lat`` (degrees) on ``date`` (float64)."""
    k = band_index(name)
    doy = date.timetuple().tm_yday
    lon_r = np.radians(lon)
    lat_r = np.radians(lat)
    base = VEGETATION.get(name, 0.1 + 0.02 * k)
    v = (0.5 + 0.5 * np.sin(50.0 * lon_r + k)) * (0.5 + 0.5 * np.cos(50.0 * lat_r))
    return base * (0.5 + v) + 0.05 * doy / 366.0


class SceneBlock:
    """Pixel centres of a block of rows of the request grid, in the request CRS and in lon/lat."""

    def __init__(
        self,
        bbox: tuple[float, float, float, float],
        width: int,
        height: int,
        epsg: int,
        row0: int,
        nrows: int,
        geometry: dict | None,
    ) -> None:
        minx, miny, maxx, maxy = bbox
        a = (maxx - minx) / width
        e = -(maxy - miny) / height
        cols = np.arange(width, dtype=np.float64)
        rows = np.arange(row0, row0 + nrows, dtype=np.float64)
        xx, yy = np.meshgrid(minx + (cols + 0.5) * a, maxy + (rows + 0.5) * e)
        self.x = xx.ravel()
        self.y = yy.ravel()
        if epsg == 4326:
            self.lon, self.lat = self.x, self.y
        else:
            self.lon, self.lat = _transformer(epsg).transform(self.x, self.y)
            self.lon = np.asarray(self.lon)
            self.lat = np.asarray(self.lat)
        if geometry is None:
            self.mask = np.ones(self.x.shape, dtype=bool)
        else:
            import shapely

            shape = shapely.geometry.shape(geometry)
            shapely.prepare(shape)
            self.mask = shapely.intersects_xy(shape, self.x, self.y)

    def band(self, name: str, date: datetime, units: str | None) -> np.ndarray:
        """Values of input band ``name`` (``dataMask`` included) for this block."""
        if name == "dataMask":
            return self.mask.astype(np.float64)
        values = reflectance(name, self.lon, self.lat, date)
        if units is not None and units.upper() == "DN":
            values = np.floor(values * 10000.0 + 0.5)
        return np.where(self.mask, values, 0.0)


def _transformer(epsg: int):
    from pyproj import Transformer

    # Transformer objects are not thread-safe: a fresh one per block is cheap enough.
    return Transformer.from_crs(epsg, 4326, always_xy=True)
