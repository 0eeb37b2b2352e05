"""The pixel grid of one request, exactly as the service delivers it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from affine import Affine

from xasync._contract import OPENGIS_EPSG_PREFIX


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
            (maxx - minx) / self.width, 0.0, minx, 0.0, -(maxy - miny) / self.height, maxy
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
        """Pixel-centre x coordinates, west to east."""
        t = self.transform
        return t.c + (np.arange(self.width) + 0.5) * t.a

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south."""
        t = self.transform
        return t.f + (np.arange(self.height) + 0.5) * t.e
