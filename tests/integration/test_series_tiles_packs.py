"""A time series composes with tiles and packs (issue 14 item 4), against the emulator.

``"orbit"``: a row beyond ``max_request_px`` is one multi-temporal request per tile, mosaicked
per time step; packed rows are one multi-temporal request per pack. ``"requests"``: each
(row, interval) request is tiled. Every case equals the same series bought whole, NaN for NaN.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

import xasync
from xasync.results import Results

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")  # 10D: 3 steps, 6 scenes of the calendar
WAIT_S = 300


@pytest.fixture
def setup(emu):
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    root = emu.create_bucket(f"tsplan-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)
    yield emu, client, root
    client.close()


def _row() -> gpd.GeoDataFrame:
    """One 20 x 16 px row at 10 m (its bbox on the grid), not a rectangle."""
    geom = shapely.Polygon(
        [(500000, 4000000), (500200, 4000030), (500170, 4000160), (500020, 4000140)]
    )
    return gpd.GeoDataFrame(geometry=[geom], crs=32633, index=["r1"])


def _fields() -> gpd.GeoDataFrame:
    """Four 80 x 60 m fields 100 m apart on a 10 m grid: worth packing."""
    geoms = [
        shapely.box(x, y, x + 80, y + 60)
        for x, y in ((501000, 4001000), (501100, 4001000), (501000, 4001100), (501100, 4001100))
    ]
    return gpd.GeoDataFrame(geometry=geoms, crs=32633, index=[f"f{i}" for i in range(4)])


def _run(gdf, setup, prefix, **kw):
    emu, client, root = setup
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        freq="10D",
        resolution=10,
        mask=True,
        delivery=f"{root}/{prefix}",
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
    assert res.wait(timeout=WAIT_S, progress=False) is res
    return res


def _creates(emu) -> int:
    return int(emu.stats["creates"])


def test_orbit_series_of_a_tiled_row_is_one_request_per_tile(setup):
    emu, _, root = setup
    gdf = _row()
    est = gdf.xasync.estimate(NDVI, time=TIME, freq="10D", resolution=10, max_request_px=8)
    assert len(est) == 1 and len(est["requests"].iloc[0].split()) == 6  # 3 x 2 tiles
    assert est.attrs["temporal"] == "orbit" and est.attrs["scenes"] == 6
    tiled = _run(gdf, setup, "tiled", max_request_px=8)
    assert _creates(emu) == 6
    whole = _run(gdf, setup, "whole")
    assert _creates(emu) == 7
    a, b = tiled["r1"], whole["r1"]
    assert a["ndvi"].dims == ("time", "y", "x") and a["ndvi"].shape == (3, 16, 20)
    assert list(a.time.values) == list(b.time.values)
    values = a["ndvi"].values
    assert np.isfinite(values).any() and np.isnan(values).any()  # masked outside the polygon
    np.testing.assert_array_equal(values, b["ndvi"].values)
    assert a.scenes.values.tolist() == b.scenes.values.tolist() == [2, 2, 2]
    assert tiled.status()["state"].tolist() == ["done"]
    # open_delivery rebuilds the tiled series
    again = xasync.open_delivery(
        f"{root}/tiled", storage_options=emu.storage_options, client=setup[1]
    )
    np.testing.assert_array_equal(again[0]["ndvi"].values, values)
    assert again[0].scenes.values.tolist() == [2, 2, 2]
    assert _creates(emu) == 7  # nothing bought again


def test_orbit_series_of_packed_rows_is_one_request_per_pack(setup):
    emu = setup[0]
    gdf = _fields()
    packed = _run(gdf, setup, "packed", pack=True)
    bought = _creates(emu)
    assert bought < len(gdf)  # the four fields share requests
    alone = _run(gdf, setup, "alone")
    assert _creates(emu) == bought + len(gdf)
    for label in gdf.index:
        a, b = packed[label], alone[label]
        assert a["ndvi"].shape == b["ndvi"].shape == (3, 6, 8)
        np.testing.assert_array_equal(a["ndvi"].values, b["ndvi"].values)
        assert a.scenes.values.tolist() == [2, 2, 2]
    status = packed.status()
    assert (status["state"] == "done").all() and status["requests"].nunique() == bought


def test_requests_series_of_a_tiled_row_equals_orbit_last(setup):
    emu = setup[0]
    gdf = _row()
    per = _run(gdf, setup, "per-tiled", temporal="requests", max_request_px=8)
    assert _creates(emu) == 3 * 6  # one request per interval and tile
    assert isinstance(per, Results)
    assert per.status()["state"].tolist() == ["done"]
    assert len(per.requests.status()) == 3
    last = _run(gdf, setup, "last", reducer="last")
    a, b = per["r1"], last["r1"]
    assert a["ndvi"].shape == b["ndvi"].shape == (3, 16, 20)
    np.testing.assert_array_equal(a["ndvi"].values, b["ndvi"].values)


def test_requests_series_of_packed_rows_packs_each_interval(setup):
    emu = setup[0]
    gdf = _fields()
    est = gdf.xasync.estimate(
        NDVI, time=TIME, freq="10D", temporal="requests", resolution=10, pack=True
    )
    assert len(est) == len(gdf) * 3 and est.index.names[1] == "time"
    packs = est["requests"].nunique()
    assert packs < len(gdf) * 3  # rows of one interval share a request
    per = _run(gdf, setup, "per-packed", temporal="requests", pack=True)
    assert _creates(emu) == packs
    orbit = _run(gdf, setup, "last-alone", reducer="last")
    for label in gdf.index:
        np.testing.assert_array_equal(per[label]["ndvi"].values, orbit[label]["ndvi"].values)
    assert (per.status()["state"] == "done").all()
