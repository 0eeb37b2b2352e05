"""Deterministic synthetic scenes: what the emulator's "satellite" sees.

The formula (also in ``docs/emulator.md``, which tests re-implement) for input band ``name`` at a
pixel whose centre is at longitude ``lon`` and latitude ``lat`` (degrees, WGS 84) on ``date``:

1. Pixel centres on the request grid: ``x = minx + (col + 0.5) * a``,
   ``y = maxy + (row + 0.5) * e`` with ``a = (maxx - minx) / width``,
   ``e = -(maxy - miny) / height``, to lon/lat with
   ``pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)``.
2. Ground metres: ``X = R * radians(lon) * cos(radians(lat))``, ``Y = R * radians(lat)``,
   ``R = 6371008.8`` (a sinusoidal projection).
3. ``u(i, j, s)``: a uniform number in [0, 1) from integers ``i, j, s`` (:func:`hash01`:
   ``h = i*0x9E3779B97F4A7C15 + j*0xC2B2AE3D27D4EB4F + s*0x165667B19E3779F9 mod 2**64``, then
   the splitmix64 finaliser ``h ^= h>>30; h *= 0xBF58476D1CE4E5B9; h ^= h>>27;
   h *= 0x94D049BB133111EB; h ^= h>>31`` (all mod 2**64), ``u = (h >> 11) / 2**53``).
4. Value noise ``vn(L, s)``: ``x = X/L, y = Y/L``, ``i = floor(x), j = floor(y)``,
   ``sx = t*t*(3-2t)`` with ``t = x - i`` (``sy`` likewise), bilinear blend by ``sx, sy`` of
   ``u(i, j, s), u(i+1, j, s), u(i, j+1, s), u(i+1, j+1, s)``. Texture
   ``n = 0.5*vn(60, 11) + 0.3*vn(25, 12) + 0.2*vn(11, 13)`` (0..1).
5. Fields: rows of 300 m, ``fy = floor(Y/300)``; fields 400 m long, shifted per row:
   ``fx = floor((X + 400*u(fy, 0, 21)) / 400)``. Field class by ``c = u(fx, fy, 22)``: water if
   ``c < 0.08``, bare soil if ``c < 0.25``, else vegetation with vigour
   ``v0 = 0.55 + 0.4*u(fx, fy, 23)``.
6. Season: ``s = 0.3 + 0.7*exp(-((doy - 190)/50)**2)`` (``doy`` of ``date``, 1..366).
7. Green cover ``g``: vegetation ``clip(v0*s + 0.5*(n - 0.5), 0, 1)``; soil ``0.1*n``; water 0.
8. Reflectance of a Sentinel-2 band: land ``SOIL[b] + g*(CANOPY[b] - SOIL[b])``; water
   ``WATER[b] + 0.01*n``. Any other band name: ``(0.1 + 0.02*k)*(0.5 + g) + 0.02*n`` with
   ``k = zlib.crc32(name.encode("utf-8")) % 16``.
9. ``units: "DN"``: ``floor(R*10000 + 0.5)``; other units or none: ``R``.
10. ``dataMask`` is 1 where the pixel centre lies inside or on the request geometry (everywhere
    without one), 0 elsewhere, where every other band is 0.

The acquisition ``date`` of each scene comes from the calendar of :mod:`.acquisitions` (which
scenes a request sees: :mod:`.temporal`). Optical scenes are seen through the clouds of
:mod:`.scenes_clouds`.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timezone
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Bands that come from the cloud model (:mod:`.scenes_clouds`), in DN whatever the units.
CLOUD_BANDS = ("CLP", "CLM", "CLD", "SCL", "SNW")

#: Acquisition date when the request has no time range.
DEFAULT_DATE = datetime(2020, 6, 15, tzinfo=timezone.utc)
EARTH_RADIUS_M = 6371008.8
#: (wavelength in metres, weight, salt) of the texture octaves.
OCTAVES = ((60.0, 0.5, 11), (25.0, 0.3, 12), (11.0, 0.2, 13))
FIELD_ROW_M = 300.0
FIELD_LEN_M = 400.0
WATER_SHARE, SOIL_SHARE = 0.08, 0.25


_S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Reflectance of a dense green canopy, of bare soil and of water per Sentinel-2 band.
CANOPY = dict(
    zip(_S2, (0.03, 0.035, 0.07, 0.035, 0.10, 0.28, 0.36, 0.40, 0.42, 0.40, 0.01, 0.19, 0.09))
)
SOIL = dict(
    zip(_S2, (0.08, 0.10, 0.13, 0.17, 0.20, 0.22, 0.24, 0.25, 0.26, 0.26, 0.02, 0.32, 0.28))
)
WATER = dict(
    zip(_S2, (0.06, 0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.001, 0.005, 0.003))
)

_M1, _M2, _M3 = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
)
_F1, _F2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _u64(v: np.ndarray | int) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).view(np.uint64)


def hash01(i: np.ndarray, j: np.ndarray | int, salt: int) -> np.ndarray:
    """Uniform [0, 1) numbers from integer lattice coordinates (step 3 of the formula)."""
    h: Any = _u64(i) * _M1 + _u64(j) * _M2 + _u64(salt) * _M3
    h ^= h >> np.uint64(30)
    h *= _F1
    h ^= h >> np.uint64(27)
    h *= _F2
    h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def value_noise(x: np.ndarray, y: np.ndarray, wavelength: float, salt: int) -> np.ndarray:
    """Smooth lattice value noise in 0..1 at ground metres ``x``, ``y`` (step 4)."""
    gx, gy = x / wavelength, y / wavelength
    i, j = np.floor(gx), np.floor(gy)
    tx, ty = gx - i, gy - j
    sx, sy = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    i, j = i.astype(np.int64), j.astype(np.int64)
    top = hash01(i, j, salt) * (1 - sx) + hash01(i + 1, j, salt) * sx
    bottom = hash01(i, j + 1, salt) * (1 - sx) + hash01(i + 1, j + 1, salt) * sx
    return top * (1 - sy) + bottom * sy


def band_index(name: str) -> int:
    """The per-band constant ``k`` of the formula."""
    return zlib.crc32(name.encode("utf-8")) % 16


def season(date: datetime) -> float:
    """The phenology factor of ``date`` (step 6)."""
    doy = date.timetuple().tm_yday
    return 0.3 + 0.7 * float(np.exp(-(((doy - 190.0) / 50.0) ** 2)))


class Surface:
    """Texture, field classes and green cover at given lon/lat (steps 2-7)."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray, date: datetime) -> None:
        lat_r = np.radians(lat)
        x = EARTH_RADIUS_M * np.radians(lon) * np.cos(lat_r)
        y = EARTH_RADIUS_M * lat_r
        self.n = sum(w * value_noise(x, y, wl, salt) for wl, w, salt in OCTAVES)
        fy = np.floor(y / FIELD_ROW_M).astype(np.int64)
        fx = np.floor((x + FIELD_LEN_M * hash01(fy, 0, 21)) / FIELD_LEN_M).astype(np.int64)
        c = hash01(fx, fy, 22)
        self.water = c < WATER_SHARE
        self.soil = soil = (c >= WATER_SHARE) & (c < SOIL_SHARE)
        v0 = 0.55 + 0.4 * hash01(fx, fy, 23)
        veg = np.clip(v0 * season(date) + 0.5 * (self.n - 0.5), 0.0, 1.0)
        self.g = np.where(self.water, 0.0, np.where(soil, 0.1 * self.n, veg))
        self.field = (fx, fy)

    def reflectance(self, name: str) -> np.ndarray:
        """Reflectance of band ``name`` (step 8)."""
        if name in CANOPY:
            land = SOIL[name] + self.g * (CANOPY[name] - SOIL[name])
            return np.where(self.water, WATER[name] + 0.01 * self.n, land)
        return (0.1 + 0.02 * band_index(name)) * (0.5 + self.g) + 0.02 * self.n


def reflectance(name: str, lon: np.ndarray, lat: np.ndarray, date: datetime) -> np.ndarray:
    """Reflectance of band ``name`` at ``lon``/``lat`` (degrees) on ``date`` (float64)."""
    return Surface(np.asarray(lon, float), np.asarray(lat, float), date).reflectance(name)


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
        self._surfaces: dict[datetime, Surface] = {}
        self._skies: dict[datetime | None, Any] = {}
        if geometry is None:
            self.mask = np.ones(self.x.shape, dtype=bool)
        else:
            import shapely

            shape = shapely.geometry.shape(geometry)
            shapely.prepare(shape)
            self.mask = shapely.intersects_xy(shape, self.x, self.y)

    def band(
        self, name: str, date: datetime, units: str | None, clouds: bool = False
    ) -> np.ndarray:
        """Values of input band ``name`` (``dataMask`` included) for this block.

        With ``clouds`` the scene is seen through the clouds of :mod:`.scenes_clouds` (and the
        cloud bands ``CLP``, ``CLM``, ``CLD``, ``SCL``, ``SNW`` follow them); without, the sky
        is clear.
        """
        if name == "dataMask":
            return self.mask.astype(np.float64)
        surface = self._surfaces.get(date)
        if surface is None:
            surface = self._surfaces[date] = Surface(self.lon, self.lat, date)
        if name in CLOUD_BANDS or (clouds and name in CANOPY):  # clouds touch S2-named bands
            sky = self._sky(date, clouds)
            if name in CLOUD_BANDS:
                return np.where(self.mask, sky.band(name, surface.water, surface.soil), 0.0)
            values = sky.apply(name, surface.reflectance(name))
        else:
            values = surface.reflectance(name)
        if units is not None and units.upper() == "DN":
            values = np.floor(values * 10000.0 + 0.5)
        return np.where(self.mask, values, 0.0)

    def _sky(self, date: datetime, clouds: bool) -> Any:
        key = date if clouds else None
        sky = self._skies.get(key)
        if sky is None:
            from .scenes_clouds import Sky

            sky = self._skies[key] = Sky(self.lon, self.lat, date, clear=not clouds)
        return sky


def _transformer(epsg: int):
    from pyproj import Transformer

    # Transformer objects are not thread-safe: a fresh one per block is cheap enough.
    return Transformer.from_crs(epsg, 4326, always_xy=True)
