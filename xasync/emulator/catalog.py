"""What the service knows about its data collections: bands, ``dataFilter`` and ``processing``.

Sources: the vendor OpenAPI file (``shared/spec/async-process-openapi.yml``: the ``*Filtering`` and
``*Processing`` schemas give the fields and their enums) and the data collection pages of the
Sentinel Hub docs for the band names (https://docs.sentinel-hub.com/api/latest/data/ :
sentinel-2-l1c, sentinel-2-l2a, sentinel-1-grd, landsat-8 (L1), landsat-8-l2, dem). Collections
not in :data:`BANDS` (Landsat 4-7, MODIS, HLS, Sentinel-3/5P, BYOC) get their ``dataFilter`` and
``processing`` checked but not their band names.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class InvalidField(ValueError):
    """A field of a create body with a value the service refuses."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


_S2_COMMON = (
    *(f"B{i:02d}" for i in range(1, 10)),
    "B8A",
    "B11",
    "B12",
    "sunAzimuthAngles",
    "sunZenithAngles",
    "viewAzimuthMean",
    "viewZenithMean",
    "dataMask",
)
_LANDSAT_L1 = (
    *(f"B{i:02d}" for i in range(1, 12)),
    *("BQA", "QA_RADSAT", "VAA", "VZA", "SAA", "SZA", "dataMask"),
)
_LANDSAT_L2 = (
    *(f"B{i:02d}" for i in range(1, 8)),
    *("B10", "BQA", "QA_RADSAT", "SR_QA_AEROSOL", "ST_QA", "ST_TRAD", "ST_URAD", "ST_DRAD"),
    *("ST_ATRAN", "ST_EMIS", "ST_EMSD", "ST_CDIST", "dataMask"),
)

#: Input band names per collection type (``dataMask`` everywhere).
BANDS: dict[str, frozenset[str]] = {
    "sentinel-2-l1c": frozenset((*_S2_COMMON, "B10", "CLP", "CLM")),
    "sentinel-2-l2a": frozenset(
        (*_S2_COMMON, "AOT", "SCL", "SNW", "CLD", "CLP", "CLM", "WVP"),
    ),
    "sentinel-1-grd": frozenset(
        ("VV", "VH", "HH", "HV", "localIncidenceAngle", "scatteringArea", "shadowMask", "dataMask")
    ),
    "landsat-ot-l1": frozenset(_LANDSAT_L1),
    "landsat-8-l1c": frozenset(_LANDSAT_L1),
    "landsat-ot-l2": frozenset(_LANDSAT_L2),
    "dem": frozenset(("DEM", "dataMask")),
}
#: The legacy short names of the official examples.
ALIASES = {"S2L2A": "sentinel-2-l2a", "S2L1C": "sentinel-2-l1c"}

SAMPLING = ("NEAREST", "BILINEAR", "BICUBIC")
ORDERS_OPTICAL = ("mostRecent", "leastRecent", "leastCC")
ORDERS_OTHER = ("mostRecent", "leastRecent")
S1_FILTER_ENUMS = {
    "resolution": ("HIGH", "MEDIUM", "FULL"),
    "acquisitionMode": ("SM", "IW", "EW", "WV", "EN", "AN", "IM"),
    "polarization": ("SH", "SV", "DH", "DV", "HH", "HV", "VV", "VH"),
    "orbitDirection": ("ASCENDING", "DESCENDING"),
    "timeliness": ("NRT10m", "NRT1h", "NRT3h", "Fast24h", "Offline", "Reprocessing", "ArchNormal"),
}
S1_BACK_COEFF = ("BETA0", "SIGMA0_ELLIPSOID", "GAMMA0_ELLIPSOID", "GAMMA0_TERRAIN")
S1_DEM_INSTANCES = ("MAPZEN", "COPERNICUS", "COPERNICUS_30", "COPERNICUS_90")
DEM_FILTER_INSTANCES = ("MAPZEN", "COPERNICUS_30", "COPERNICUS_90")
TIERS_WITH_RT = ("TIER_1", "TIER_1_AND_RT", "ALL_TIERS")
TIERS_WITHOUT_RT = ("TIER_1", "ALL_TIERS")
LANDSAT_WITH_RT = frozenset(("landsat-ot-l1", "landsat-etm-l1", "landsat-8-l1c"))


def canonical(dtype: str) -> str:
    """The collection type behind a legacy alias (``S2L2A`` -> ``sentinel-2-l2a``)."""
    return ALIASES.get(dtype, dtype)


def family(dtype: str) -> str:
    """``s2``, ``s1``, ``landsat``, ``dem``, ``hls``, ``modis``, ``byoc`` or ``other``."""
    t = canonical(dtype)
    if t.startswith("sentinel-2"):
        return "s2"
    if t == "sentinel-1-grd":
        return "s1"
    if t.startswith("landsat"):
        return "landsat"
    if t.startswith(("byoc-", "batch-", "zarr-")):
        return "byoc"
    return t if t in ("dem", "hls", "modis") else "other"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _enum(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidField(field, f"must be one of {', '.join(allowed)}; got {value!r}")


def _enum_of(allowed: tuple[str, ...], field: str, value: Any) -> None:
    _enum(field, value, allowed)


def _bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidField(field, f"must be a boolean; got {value!r}")


def _range(field: str, value: Any, lo: float, hi: float, integer: bool = False) -> None:
    ok = (isinstance(value, int) and not isinstance(value, bool)) if integer else _is_number(value)
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise InvalidField(field, f"must be {kind} from {lo:g} to {hi:g}; got {value!r}")


def _filter_checks(fam: str, dtype: str) -> dict[str, Callable[[str, Any], None]]:
    checks: dict[str, Callable[[str, Any], None]] = {}
    if fam in ("s2", "landsat", "hls"):
        checks["mosaickingOrder"] = lambda f, v: _enum(f, v, ORDERS_OPTICAL)
        checks["maxCloudCoverage"] = lambda f, v: _range(f, v, 0, 100)
    elif fam in ("s1", "modis", "byoc"):
        checks["mosaickingOrder"] = lambda f, v: _enum(f, v, ORDERS_OTHER)
    if fam == "s1":
        for name, allowed in S1_FILTER_ENUMS.items():
            checks[name] = functools.partial(_enum_of, allowed)
    if fam == "landsat":
        tiers = TIERS_WITH_RT if canonical(dtype) in LANDSAT_WITH_RT else TIERS_WITHOUT_RT
        checks["tiers"] = lambda f, v: _enum(f, v, tiers)
    if fam == "hls":
        checks["constellation"] = lambda f, v: _enum(f, v, ("SENTINEL", "LANDSAT"))
    if fam == "dem":
        checks["demInstance"] = lambda f, v: _enum(f, v, DEM_FILTER_INSTANCES)
    return checks


def _speckle(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidField(field, "must be an object with type LEE or NONE")
    _enum(f"{field}.type", value.get("type"), ("LEE", "NONE"))
    if value["type"] == "LEE":
        for name in ("windowSizeX", "windowSizeY"):
            _range(f"{field}.{name}", value.get(name), 1, 7, integer=True)


def _processing_checks(fam: str) -> dict[str, Callable[[str, Any], None]]:
    checks: dict[str, Callable[[str, Any], None]] = {
        "upsampling": lambda f, v: _enum(f, v, SAMPLING),
        "downsampling": lambda f, v: _enum(f, v, SAMPLING),
    }
    if fam == "s2":
        checks["harmonizeValues"] = _bool
    if fam == "s1":
        checks["backCoeff"] = lambda f, v: _enum(f, v, S1_BACK_COEFF)
        checks["orthorectify"] = _bool
        checks["demInstance"] = lambda f, v: _enum(f, v, S1_DEM_INSTANCES)
        checks["speckleFilter"] = _speckle
        checks["radiometricTerrainOversampling"] = lambda f, v: _range(f, v, 1, 4)
    if fam == "dem":
        checks["clampNegative"] = _bool
        checks["egm"] = _bool
    return checks


def check_data_item(item: dict, field: str) -> None:
    """Check ``dataFilter`` and ``processing`` of one ``input.data`` item (not ``timeRange``).

    Raises
    ------
    InvalidField
        Naming the field, e.g. ``input.data[0].dataFilter.maxCloudCoverage``.
    """
    dtype = item["type"]
    fam = family(dtype)
    for part, checks in (
        ("dataFilter", _filter_checks(fam, dtype)),
        ("processing", _processing_checks(fam)),
    ):
        section = item.get(part)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise InvalidField(f"{field}.{part}", "must be an object")
        for name, check in checks.items():
            if name in section:
                check(f"{field}.{part}.{name}", section[name])


def unknown_bands(dtype: str, bands: list[str]) -> list[str]:
    """Bands of ``bands`` that collection ``dtype`` does not have (``[]`` if not tabulated)."""
    table = BANDS.get(canonical(dtype))
    if table is None:
        return []
    return [b for b in bands if b not in table]
