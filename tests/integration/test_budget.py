"""Costs before paying, end to end: gdf.xasync.estimate, process(max_pu=...), estimated_pu in status.

Also the deployment's delivery refusals, checked by ``process`` before anything is bought.
"""

from __future__ import annotations

import uuid

import geopandas as gpd
import pytest
from shapely.geometry import box

import xasync

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")


def _fields(n: int) -> gpd.GeoDataFrame:
    geoms = [box(14.0 + 0.01 * i, 46.0, 14.004 + 0.01 * i, 46.003) for i in range(n)]
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"f{i}" for i in range(n)])


@pytest.fixture
def setup(emu):
    root = emu.create_bucket(f"budget-{uuid.uuid4().hex[:10]}")
    client = xasync.Client.from_emulator(emu)
    yield emu, client, root
    client.close()


def test_estimate_needs_nothing_and_matches_the_charge(setup):
    emu, client, root = setup
    gdf = _fields(3)
    keywords = {"time": TIME, "resolution": 10, "crs": "utm"}
    costs = gdf.xasync.estimate(NDVI, **keywords)  # no client, no delivery
    assert list(costs.index) == list(gdf.index)
    assert emu.stats["creates"] == 0 and emu.stats["token_calls"] == 0

    results = gdf.xasync.process(
        NDVI,
        **keywords,
        delivery=f"{root}/ndvi",
        storage_options=emu.storage_options,
        client=client,
    )
    status = results.wait(timeout=120, progress=False).status()
    assert list(status["estimated_pu"]) == pytest.approx(list(costs["estimated_pu"]))
    assert list(status["cost_pu"]) == pytest.approx(list(costs["estimated_pu"]))


def test_budget_exceeded_raises_before_anything_is_paid(setup):
    emu, client, root = setup
    gdf = _fields(3)  # three requests of at least 10 PU each
    with pytest.raises(xasync.BudgetExceeded) as info:
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=10,
            crs="utm",
            delivery=f"{root}/ndvi",
            storage_options=emu.storage_options,
            client=client,
            max_pu=25,
        )
    assert isinstance(info.value, xasync.ValidationError)
    assert info.value.estimate_pu == pytest.approx(30.0) and info.value.max_pu == 25
    assert "30.00 PU" in str(info.value)
    assert emu.stats["creates"] == 0


def test_cdse_refuses_an_iam_role_before_paying(setup):
    emu, _client, root = setup
    cdse = xasync.Client.from_emulator(emu, deployment="cdse")
    try:
        with pytest.raises(xasync.ValidationError, match="iam"):
            _fields(1).xasync.process(
                NDVI,
                time=TIME,
                resolution=10,
                crs="utm",
                delivery=f"{root}/ndvi",
                iam_role_arn="arn:aws:iam::123456789012:role/sh",
                client=cdse,
            )
    finally:
        cdse.close()
    assert emu.stats["creates"] == 0
