"""The published Processing Unit (PU) rules of the Async Processing API, as pure functions.

A request's cost is the product of multiplication factors, then the Async rules:

    base = area x bands x format x samples x fusion x sentinel-1
    PU   = max(10, base x (2/3 if width x height >= 10 000 else 1))

Sources (read 2026-12; the rules are the vendor's, the wording and code here are ours):

- Sentinel Hub, "Processing Unit definition":
  https://docs.sentinel-hub.com/api/latest/api/overview/processing-unit/
- Copernicus Data Space Ecosystem, "Processing Unit definition" (its "Asynchronous Processing
  API" section states the 10 PU minimum and the 2/3 factor from 10,000 px):
  https://documentation.dataspace.copernicus.eu/APIs/SentinelHub/Overview/ProcessingUnit.html
- The Async API pages: https://docs.sentinel-hub.com/api/latest/api/async-process/ ,
  https://documentation.dataspace.copernicus.eu/APIs/SentinelHub/AsyncProcess.html and
  https://docs.planet.com/develop/apis/async-processing (minimum 10 PU; 2/3 factor).
- Sentinel-1 processing options (``orthorectify``, ``backCoeff``, ``speckleFilter``): the
  ``S1Processing`` schema of the vendor's OpenAPI file (``shared/spec/async-api.md`` section 0).

Rules, and the readings this module makes where the sources are silent (marked *assumption*):

- **Area**: ``width * height / 512**2``, at least 0.01.
- **Input bands**: the bands listed in the evalscript's ``setup().input`` divided by 3;
  ``dataMask`` is not counted unless it is the only band. With data fusion, the bands of every
  data source are added up (*assumption*: the sources do not say how fusion counts bands).
- **Output format**: a FLOAT32 TIFF output x2, ``application/octet-stream`` x1.4, 8/16-bit
  TIFF, PNG and JPEG x1. With several outputs the *largest* factor of the requested outputs
  applies once (*assumption*: the sources price "the output format" of a request and do not
  say how several outputs combine; outputs that are not requested do not count).
- **Samples**: the number of data samples per pixel: 1 for ``SIMPLE`` mosaicking, the number
  of scenes for ``ORBIT``/``TILE`` (which only a catalog search can tell; when it is not given,
  1 is used and the estimate is a lower bound, see :attr:`PUFactors.exact`).
- **Data fusion** (only with more than one data item): ``local + 2 x remote`` collections,
  "remote" meaning hosted at another endpoint than the one the request is sent to. Only the
  Process API endpoint fuses collections hosted elsewhere (the "Data Fusion" pages,
  https://docs.sentinel-hub.com/api/latest/data/data-fusion/ and
  https://documentation.dataspace.copernicus.eu/APIs/SentinelHub/Data/DataFusion.html), so an
  Async request's collections are all local and the factor is their number; ``remote=`` is
  kept for completeness.
- **Sentinel-1**: orthorectification x2; radiometric terrain correction
  (``backCoeff: GAMMA0_TERRAIN``) x2.5 *instead of* the orthorectification factor; speckle
  filtering (``speckleFilter.type`` other than ``NONE``) x2. With several Sentinel-1 items the
  largest factor applies (*assumption*).
- **Async**: a minimum of 10 PU per request and x2/3 for requests of at least 10,000 px. The
  sources do not say in which order, nor whether "px" is ``width * height``; the reading here
  (*inferred*, spec section 11) is ``max(10, base * (2/3 if width * height >= 10000 else 1))``.
  The 2/3 factor is stated by the CDSE and Planet pages; the older Sentinel Hub Async page
  states only the minimum. Where it is not applied, a request above 10 PU costs 1.5 times the
  estimate.

Not modelled: the 0.03 PU per MB surcharge for delivery to a bucket in another region of the
same system (it depends on the compressed size of the outputs), and the announced evalscript
execution-time surcharge (marked "not yet applied" by the sources).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xasync._contract import (
    ASYNC_DISCOUNT_FACTOR,
    ASYNC_DISCOUNT_MIN_PIXELS,
    MIN_COST_PU,
    PU_AREA_UNIT_PX,
    PU_MIN_AREA_FACTOR,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PUFactors",
    "area_factor",
    "async_pu",
    "bands_factor",
    "count_input_bands",
    "format_factor",
    "fusion_factor",
    "input_band_names",
    "request_factors",
    "request_pu",
    "samples_factor",
    "sentinel1_factor",
]

#: Input bands included in 1 PU.
BANDS_PER_PU = 3
#: The band that is free unless it is the only one.
DATA_MASK = "dataMask"
#: Output format factors.
FLOAT32_TIFF_FACTOR = 2.0
OCTET_STREAM_FACTOR = 1.4
#: Data fusion: a collection served from another deployment counts this many times.
REMOTE_COLLECTION_WEIGHT = 2
#: Sentinel-1 processing factors.
ORTHORECTIFY_FACTOR = 2.0
TERRAIN_CORRECTION_FACTOR = 2.5
SPECKLE_FILTER_FACTOR = 2.0
#: ``backCoeff`` value that means radiometric terrain correction.
TERRAIN_CORRECTED_BACKCOEFF = "GAMMA0_TERRAIN"
#: Mosaicking modes whose samples are the scenes.
MULTI_SAMPLE_MOSAICKING = ("ORBIT", "TILE")


@dataclass(frozen=True)
class PUFactors:
    """The multiplication factors of one request, and its cost (so users can see why).

    Attributes
    ----------
    width, height : int
        Output size in pixels.
    area, bands, format, samples, fusion, sentinel1 : float
        The factors of the published rules (see the module docstring).
    input_bands : int
        The input bands counted (``dataMask`` excluded unless alone).
    async_factor : float
        2/3 for requests of at least 10,000 px, else 1.
    exact : bool
        False when the number of samples was unknown (``ORBIT``/``TILE`` mosaicking without a
        scene count): the cost is then a lower bound.

    """

    width: int
    height: int
    area: float
    input_bands: int
    bands: float
    format: float
    samples: float
    fusion: float
    sentinel1: float
    async_factor: float
    exact: bool = True

    @property
    def base(self) -> float:
        """The product of the general factors (what Process API would charge, before minima)."""
        return self.area * self.bands * self.format * self.samples * self.fusion * self.sentinel1

    @property
    def pu(self) -> float:
        """The Async cost: ``max(10, base * async_factor)``."""
        return max(MIN_COST_PU, self.base * self.async_factor)


def area_factor(width: int, height: int) -> float:
    """``width * height / 512**2``, at least 0.01."""
    return max(PU_MIN_AREA_FACTOR, width * height / PU_AREA_UNIT_PX)


def input_band_names(setup_input: Any) -> tuple[str, ...]:
    """The band names of an evalscript's ``setup().input`` value, in order.

    Accepts the Evalscript V3 forms: a list of band names, a list of objects with ``bands``
    (each possibly with a ``datasource``, for data fusion), or one such object.

    Raises
    ------
    ValueError
        An item that is neither a band name nor an object with a ``bands`` list.

    """
    items = [setup_input] if isinstance(setup_input, Mapping) else setup_input
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ValueError(f"setup().input must be a list, got {setup_input!r}")
    names: list[str] = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("bands"), Sequence):
            bands = item["bands"]
            if isinstance(bands, str) or not all(isinstance(b, str) for b in bands):
                raise ValueError(f"setup().input bands must be a list of names, got {bands!r}")
            names.extend(bands)
        else:
            raise ValueError(f"setup().input item {item!r} is not a band name nor {{bands: [...]}}")
    return tuple(names)


def count_input_bands(names: Iterable[str]) -> int:
    """Bands that count: every listed band but ``dataMask``, or 1 if ``dataMask`` is alone."""
    names = list(names)
    counted = sum(1 for n in names if n != DATA_MASK)
    if counted == 0 and DATA_MASK in names:
        return 1
    return counted


def bands_factor(n_bands: int) -> float:
    """``n_bands / 3``."""
    return n_bands / BANDS_PER_PU


def format_factor(sample_type: str, format_type: str = "image/tiff") -> float:
    """The factor of one output: FLOAT32 TIFF 2, octet-stream 1.4, anything else 1."""
    if format_type == "application/octet-stream":
        return OCTET_STREAM_FACTOR
    if format_type == "image/tiff" and str(sample_type).upper() == "FLOAT32":
        return FLOAT32_TIFF_FACTOR
    return 1.0


def samples_factor(mosaicking: str = "SIMPLE", scenes: int | None = None) -> tuple[float, bool]:
    """``(factor, exact)``: 1 for SIMPLE; the scene count for ORBIT/TILE (1 and inexact if unknown)."""
    if str(mosaicking).upper() not in MULTI_SAMPLE_MOSAICKING:
        return 1.0, True
    if scenes is None:
        return 1.0, False
    return float(max(1, int(scenes))), True


def fusion_factor(n_collections: int, remote: int = 0) -> float:
    """``local + 2 * remote`` when more than one collection is fused, else 1."""
    if n_collections <= 1:
        return 1.0
    remote = min(max(0, remote), n_collections)
    return float(n_collections - remote + REMOTE_COLLECTION_WEIGHT * remote)


def sentinel1_factor(processing: Mapping[str, Any] | None) -> float:
    """The factor of one data item's Sentinel-1 ``processing`` options.

    Radiometric terrain correction (``backCoeff: GAMMA0_TERRAIN``) x2.5 replaces
    orthorectification (``orthorectify: true``) x2; a speckle filter other than ``NONE`` x2.
    """
    if not processing:
        return 1.0
    factor = 1.0
    if str(processing.get("backCoeff", "")).upper() == TERRAIN_CORRECTED_BACKCOEFF:
        factor *= TERRAIN_CORRECTION_FACTOR
    elif processing.get("orthorectify") is True:
        factor *= ORTHORECTIFY_FACTOR
    speckle = processing.get("speckleFilter")
    if isinstance(speckle, Mapping) and str(speckle.get("type", "NONE")).upper() != "NONE":
        factor *= SPECKLE_FILTER_FACTOR
    return factor


def async_pu(base: float, width: int, height: int) -> float:
    """``max(10, base * (2/3 if width * height >= 10000 else 1))`` (the inferred order)."""
    discount = ASYNC_DISCOUNT_FACTOR if width * height >= ASYNC_DISCOUNT_MIN_PIXELS else 1.0
    return max(MIN_COST_PU, base * discount)


def request_factors(
    width: int,
    height: int,
    input_bands: Iterable[str] | int,
    sample_types: Iterable[str] = ("AUTO",),
    *,
    format_types: Iterable[str] | None = None,
    mosaicking: str = "SIMPLE",
    scenes: int | None = None,
    data: Sequence[Mapping[str, Any]] = (),
    remote: int = 0,
) -> PUFactors:
    """The factors of one Async request.

    Parameters
    ----------
    width, height : int
        Output size in pixels.
    input_bands : iterable of str or int
        The band names of ``setup().input`` (the ``dataMask`` rule is applied), or the number
        of bands that count.
    sample_types : iterable of str
        The ``sampleType`` of each *requested* output.
    format_types : iterable of str, optional
        The response ``format.type`` of each requested output (default ``image/tiff``).
    mosaicking : str
        The evalscript's mosaicking (``SIMPLE``, ``ORBIT``, ``TILE``).
    scenes : int, optional
        Scenes per pixel for ``ORBIT``/``TILE``; unknown makes the estimate a lower bound.
    data : sequence of dict
        The ``input.data`` items (their count gives data fusion; their ``processing``, the
        Sentinel-1 factors).
    remote : int
        How many of the fused collections are served from another deployment.

    Returns
    -------
    PUFactors

    """
    n_bands = input_bands if isinstance(input_bands, int) else count_input_bands(input_bands)
    stypes = list(sample_types) or ["AUTO"]
    ftypes = list(format_types) if format_types is not None else ["image/tiff"] * len(stypes)
    fmt = max(format_factor(s, f) for s, f in zip(stypes, ftypes, strict=True))
    samples, exact = samples_factor(mosaicking, scenes)
    s1 = max((sentinel1_factor(item.get("processing")) for item in data), default=1.0)
    pixels = width * height
    return PUFactors(
        width=int(width),
        height=int(height),
        area=area_factor(width, height),
        input_bands=int(n_bands),
        bands=bands_factor(n_bands),
        format=fmt,
        samples=samples,
        fusion=fusion_factor(len(data), remote),
        sentinel1=s1,
        async_factor=ASYNC_DISCOUNT_FACTOR if pixels >= ASYNC_DISCOUNT_MIN_PIXELS else 1.0,
        exact=exact,
    )


def request_pu(
    width: int,
    height: int,
    input_bands: Iterable[str] | int,
    sample_types: Iterable[str] = ("AUTO",),
    **keywords: Any,
) -> float:
    """The Async cost in PU of one request; see :func:`request_factors` for the parameters."""
    return request_factors(width, height, input_bands, sample_types, **keywords).pu
