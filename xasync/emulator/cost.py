"""The cost of a request in processing units (PU), from the published rules.

Sources (also ``shared/spec/async-api.md`` section 11 and ``shared/FIELD-NOTES.md``):

- Sentinel Hub, "Processing Units":
  https://docs.sentinel-hub.com/api/latest/api/overview/processing-unit/ :
  ``PU = area factor x bands factor x output format factor x samples factor (x data fusion
  factor) (x Sentinel-1 factors)`` with the area factor ``width*height / 512**2`` (minimum
  0.01), the bands factor ``input bands / 3`` (``dataMask`` not counted unless it is the only
  band), the format factor 2 for 32-bit float TIFF (1 for 8/16-bit TIFF, PNG, JPEG), the samples
  factor = samples per pixel (the number of scenes with ORBIT/TILE mosaicking, 1 for SIMPLE),
  the data fusion factor = local collections + 2 x remote ones, and for Sentinel-1
  orthorectification x2, radiometric terrain correction x2.5 (instead of the orthorectification
  factor), speckle filtering x2.
- CDSE, "Processing units": https://documentation.dataspace.copernicus.eu/APIs/SentinelHub/Overview/ProcessingUnit.html
  and Planet's Async API page (https://docs.planet.com/develop/apis/async/): Async requests cost
  at least 10 PU, and requests of at least 10,000 px pay 2/3 of the base rate.

Readings where the pages are silent (documented in ``docs/emulator.md``):

- "10,000 px" is ``width * height``; the minimum applies after the 2/3 factor:
  ``cost = max(10, base * (2/3 if width*height >= 10000 else 1))``.
- The format factor is a property of the request: x2 once when at least one requested TIFF
  response is a FLOAT32 output, whatever the number of outputs (not per output, not summed).
- The emulator treats every collection as local (the fusion factor = number of collections, and
  only with 2 or more).
- The samples factor of ORBIT/TILE is the number of scenes processed (after
  ``preProcessScenes``); 1 for SIMPLE.
- Bands are counted over ``setup().input`` (all collections together for data fusion).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from xasync import _contract as C

logger = logging.getLogger(__name__)

S1_ORTHO_FACTOR = 2.0
S1_RTC_FACTOR = 2.5
S1_SPECKLE_FACTOR = 2.0
FLOAT32_FACTOR = 2.0


@dataclass(frozen=True)
class CostFactors:
    """The factors of one request's cost (written beside the cost in the request copy)."""

    area: float
    bands: float
    output_format: float
    samples: float
    fusion: float
    sentinel1: float
    async_discount: float

    def total(self) -> float:
        """``max(10, product of the factors)``."""
        base = self.area * self.bands * self.output_format * self.samples * self.fusion
        return max(C.MIN_COST_PU, base * self.sentinel1 * self.async_discount)

    def as_dict(self) -> dict[str, float]:
        """The factors by name."""
        return asdict(self)


def band_factor(bands: list[str]) -> float:
    """``input bands / 3``, ``dataMask`` counted only when it is the only band."""
    counted = [b for b in bands if b != "dataMask"]
    return (len(counted) or (1 if bands else 0)) / 3.0


def sentinel1_factor(processing: dict[str, Any] | None) -> float:
    """Orthorectification x2, or terrain correction (``GAMMA0_TERRAIN``) x2.5; speckle x2."""
    p = processing or {}
    factor = 1.0
    if p.get("backCoeff") == "GAMMA0_TERRAIN":
        factor *= S1_RTC_FACTOR
    elif p.get("orthorectify") is True:
        factor *= S1_ORTHO_FACTOR
    speckle = p.get("speckleFilter")
    if isinstance(speckle, dict) and speckle.get("type", "NONE") != "NONE":
        factor *= S1_SPECKLE_FACTOR
    return factor


def cost_factors(
    width: int,
    height: int,
    bands: list[str],
    *,
    float32_tiff: bool = False,
    samples: int = 1,
    data: tuple[dict, ...] | list[dict] = (),
) -> CostFactors:
    """The factors of a request of ``width`` x ``height`` px (see the module docstring).

    Parameters
    ----------
    bands
        ``setup().input`` band names.
    float32_tiff
        Whether a requested TIFF response is a FLOAT32 output.
    samples
        Samples per pixel (scenes for ORBIT/TILE mosaicking, 1 for SIMPLE).
    data
        The ``input.data`` items (their ``type`` and ``processing``).
    """
    pixels = width * height
    s1 = 1.0
    for item in data:
        if item.get("type") == "sentinel-1-grd":
            s1 = max(s1, sentinel1_factor(item.get("processing")))
    return CostFactors(
        area=max(C.PU_MIN_AREA_FACTOR, pixels / C.PU_AREA_UNIT_PX),
        bands=band_factor(bands),
        output_format=FLOAT32_FACTOR if float32_tiff else 1.0,
        samples=float(max(1, samples)),
        fusion=float(len(data)) if len(data) > 1 else 1.0,
        sentinel1=s1,
        async_discount=C.ASYNC_DISCOUNT_FACTOR if pixels >= C.ASYNC_DISCOUNT_MIN_PIXELS else 1.0,
    )


def processing_units(**kwargs: Any) -> float:
    """The cost in PU: :func:`cost_factors` (same arguments) then :meth:`CostFactors.total`."""
    return cost_factors(**kwargs).total()
