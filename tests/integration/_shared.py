"""Pieces the end-to-end tests share: evalscripts, the time range, a field builder."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import box

#: NDVI with dataMask among the inputs (pixels outside the field are masked by the service).
NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""

#: NDVI from B04 and B08 only.
NDVI_NO_MASK = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""

TIME = ("2024-06-01", "2024-06-30")


def fields(
    n: int,
    *,
    lon0: float = 14.0,
    lat0: float = 46.0,
    per_row: int = 25,
    index: Sequence[Any] | None = None,
) -> gpd.GeoDataFrame:
    """``n`` small boxes (0.004 x 0.003 deg) in EPSG:4326, 0.01 deg apart, ``per_row`` a row.

    Labelled ``field-<i>`` unless ``index`` is given; a ``name`` column ``f<i>``.
    """
    geoms = []
    for i in range(n):
        x, y = lon0 + 0.01 * (i % per_row), lat0 + 0.01 * (i // per_row)
        geoms.append(box(x, y, x + 0.004, y + 0.003))
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(n)]},
        geometry=geoms,
        crs=4326,
        index=[f"field-{i}" for i in range(n)] if index is None else list(index),
    )


def until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> None:
    """Wait for ``condition()`` (a generous bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_ndvi(gdf: gpd.GeoDataFrame, emu: Any, client: Any, delivery: str, **kw: Any) -> Any:
    """``gdf.xasync.process`` of :data:`NDVI_NO_MASK` over :data:`TIME` at 0.0002 deg on the
    emulator."""
    return gdf.xasync.process(
        NDVI_NO_MASK,
        time=TIME,
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
