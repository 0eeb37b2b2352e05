"""Deterministic clouds over the synthetic scene (issue 14): a function of (date, ground).

The model (also in ``docs/emulator.md``; tests re-implement it), for a scene acquired on UTC day
``d`` (days since 1970-01-01) at ground metres ``X``, ``Y`` (step 2 of :mod:`.scenes`), with
``u`` and ``vn`` of :mod:`.scenes`:

1. Weather of the day: ``q = u(d, 0, 31)``. ``q < 0.45``: a clear day, no cloud anywhere.
   Otherwise ``cover = (q - 0.45) / 0.55`` and the threshold ``t = 0.8 - 0.55*cover``.
2. Cloud field ``f(X, Y) = 0.7*vn(4000, S) + 0.3*vn(1200, S + 1)`` with ``S = 100000 + 2*d``
   (patches a few km across), opacity ``a(X, Y) = clip((f - t) / 0.1, 0, 1)``.
3. Shadow: ``a_s = a(X + 600, Y - 800)`` (the cloud 1 km to the south-east casts it; zero where
   the pixel itself is under cloud, ``a > 0``).
4. Reflectance of a Sentinel-2 band ``b`` (the clear value ``R`` of :mod:`.scenes`):
   ``R' = (1 - a) * R * (1 - 0.6*a_s) + a * CLOUD[b]``; other bands are unchanged.
5. Cloud bands: ``CLP = floor(255*a + 0.5)`` (0..255), ``CLD = floor(100*a + 0.5)`` (0..100),
   ``CLM = 1`` where ``a >= 0.4`` else 0, ``SNW = 0``; ``SCL`` = 9 (cloud, high probability)
   where ``a >= 0.8``, 8 (medium) where ``0.4 <= a < 0.8``, 10 (thin cirrus) where
   ``0 < a < 0.4``, 3 (cloud shadow) where ``a_s >= 0.4``, else 6 water, 5 bare soil,
   4 vegetation. ``dataMask`` stays 1 under clouds.
6. Per scene ``cloudCoverage`` (the tile's, in %): ``100 * mean(CLM)`` over the documented
   footprint, a 32 x 32 grid of cell centres of the 1 x 1 degree cell that holds the request's
   bbox centre (lon/lat), rounded to 2 decimals.

Only optical collections (Sentinel-2, Landsat, HLS: the ones with ``maxCloudCoverage``) have
clouds; ``Emulator.configure(clouds=False)`` turns them off.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np

from .scenes import EARTH_RADIUS_M, hash01, value_noise

logger = logging.getLogger(__name__)

CLEAR_SHARE = 0.45
CLOUD_OCTAVES = ((4000.0, 0.7, 0), (1200.0, 0.3, 1))
SALT_BASE = 100000
EDGE = 0.1
SHADOW_SHIFT_M = (600.0, -800.0)
SHADOW_DARKEN = 0.6
MASK_AT = 0.4
HIGH_AT = 0.8
FOOTPRINT_CELLS = 32

_S2 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Reflectance of a thick cloud per Sentinel-2 band: bright and flat in the visible and NIR.
CLOUD = dict(
    zip(_S2, (0.46, 0.44, 0.43, 0.42, 0.43, 0.44, 0.44, 0.45, 0.44, 0.22, 0.12, 0.32, 0.22))
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def day_number(date: datetime) -> int:
    """``d``: whole UTC days since 1970-01-01 of ``date``."""
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    return (date - _EPOCH).days


def threshold(date: datetime) -> float | None:
    """The cloud threshold ``t`` of the day (step 1), ``None`` on a clear day."""
    d = day_number(date)
    q = float(hash01(np.asarray([d]), 0, 31)[0])
    if q < CLEAR_SHARE:
        return None
    cover = (q - CLEAR_SHARE) / (1.0 - CLEAR_SHARE)
    return 0.8 - 0.55 * cover


def opacity(x: np.ndarray, y: np.ndarray, date: datetime) -> np.ndarray:
    """Cloud opacity ``a`` (0..1) at ground metres ``x``, ``y`` on ``date`` (step 2)."""
    t = threshold(date)
    if t is None:
        return np.zeros(np.shape(x))
    salt = SALT_BASE + 2 * day_number(date)
    f = sum(w * value_noise(x, y, wl, salt + k) for wl, w, k in CLOUD_OCTAVES)
    return np.clip((f - t) / EDGE, 0.0, 1.0)


def ground(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground metres ``X``, ``Y`` of lon/lat degrees (step 2 of :mod:`.scenes`)."""
    lat_r = np.radians(lat)
    return EARTH_RADIUS_M * np.radians(lon) * np.cos(lat_r), EARTH_RADIUS_M * lat_r


class Sky:
    """Cloud opacity and shadow over given lon/lat on one date (steps 2-3)."""

    def __init__(
        self, lon: np.ndarray, lat: np.ndarray, date: datetime, clear: bool = False
    ) -> None:
        x, y = ground(np.asarray(lon, float), np.asarray(lat, float))
        self.a = np.zeros(x.shape) if clear else opacity(x, y, date)
        if clear or threshold(date) is None:
            self.shadow = self.a
        else:
            dx, dy = SHADOW_SHIFT_M
            free = self.a == 0  # no shadow seen under a cloud
            self.shadow = np.zeros(x.shape)
            self.shadow[free] = opacity(x[free] + dx, y[free] + dy, date)

    def apply(self, name: str, clear: np.ndarray) -> np.ndarray:
        """Reflectance of band ``name`` seen through the clouds (step 4)."""
        if name not in CLOUD:
            return clear
        shaded = clear * (1.0 - SHADOW_DARKEN * self.shadow)
        return (1.0 - self.a) * shaded + self.a * CLOUD[name]

    def band(self, name: str, water: np.ndarray, soil: np.ndarray) -> np.ndarray:
        """A cloud band (``CLP``, ``CLM``, ``CLD``, ``SCL``, ``SNW``; step 5)."""
        a = self.a
        if name == "CLP":
            return np.floor(255.0 * a + 0.5)
        if name == "CLD":
            return np.floor(100.0 * a + 0.5)
        if name == "CLM":
            return (a >= MASK_AT).astype(np.float64)
        if name == "SNW":
            return np.zeros(a.shape)
        scl = np.where(water, 6.0, np.where(soil, 5.0, 4.0))
        scl = np.where(self.shadow >= MASK_AT, 3.0, scl)
        scl = np.where(a > 0, 10.0, scl)
        scl = np.where(a >= MASK_AT, 8.0, scl)
        return np.where(a >= HIGH_AT, 9.0, scl)


def cloud_coverage(centre_lon: float, centre_lat: float, date: datetime) -> float:
    """The scene's ``cloudCoverage`` in % over the documented footprint (step 6)."""
    if threshold(date) is None:
        return 0.0
    lon0, lat0 = np.floor(centre_lon), np.floor(centre_lat)
    steps = (np.arange(FOOTPRINT_CELLS) + 0.5) / FOOTPRINT_CELLS
    lon, lat = np.meshgrid(lon0 + steps, lat0 + steps)
    x, y = ground(lon.ravel(), lat.ravel())
    return round(100.0 * float(np.mean(opacity(x, y, date) >= MASK_AT)), 2)
