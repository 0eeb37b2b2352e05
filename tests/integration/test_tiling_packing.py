"""Rows are not requests: tiled and packed rows against the emulator, compared with whole rows.

Creates are counted with ``emu.stats``; the charge is read from ``status()`` (the emulator writes
each request's cost into its request copy from its own implementation of the published rules).
"""

from __future__ import annotations

import dask.core
import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

import xasync
from xasync.emulator import Faults

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")
WAIT_S = 300
# Packs of at most 400 px a side: each cluster of _two_clusters() is one pack (~60 x 50 px).
# With the default 2500 both clusters (23 km apart) make one 2300 x 2200 px request, which the
# emulator renders for minutes without testing anything more.
PACK_MAX_PX = 400


@pytest.fixture
def setup(emu):
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    root = emu.create_bucket(f"plan-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)
    return emu, client, root


def _creates(emu) -> int:
    return int(emu.stats["creates"])


def _big_row() -> gpd.GeoDataFrame:
    """One 700 x 500 px row at 10 m (its bbox is on the grid), not a rectangle."""
    geom = shapely.Polygon(
        [(500000, 4000000), (507000, 4000600), (506200, 4005000), (500400, 4004100)]
    )
    return gpd.GeoDataFrame({"name": ["county"]}, geometry=[geom], crs=32633, index=["c1"])


def _run(gdf, setup, prefix, **kw):
    emu, client, root = setup
    kw.setdefault("resolution", 10)
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        delivery=f"{root}/{prefix}",
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    return res


def _awaits(arr) -> set:
    """The await tasks computing ``arr`` needs (after culling)."""
    graph = arr.__dask_graph__()
    culled = graph.cull(set(dask.core.flatten(arr.__dask_keys__())))
    return {k for k in culled if isinstance(k, str) and k.startswith("await")}


def test_a_tiled_row_equals_the_row_bought_whole(setup):
    emu = setup[0]
    gdf = _big_row()
    tiled = _run(gdf, setup, "tiled", max_request_px=300, chunks=128)
    assert _creates(emu) == 6
    status = tiled.status()
    assert list(status["state"]) == ["done"]
    assert len(str(status["requests"].iloc[0]).split()) == 6  # the row names its 6 requests
    whole = _run(gdf, setup, "whole")
    assert _creates(emu) == 7
    a, b = tiled["c1"], whole["c1"]
    assert a["ndvi"].shape == (500, 700)
    np.testing.assert_array_equal(a.x.values, b.x.values)
    np.testing.assert_array_equal(a.y.values, b.y.values)
    assert a.rio.transform() == b.rio.transform() and a.rio.crs == b.rio.crs
    np.testing.assert_array_equal(a["ndvi"].values, b["ndvi"].values)
    # chunks are cut at the tile seams: a corner needs one tile, a seam two
    assert len(_awaits(a["ndvi"].data[:100, :100])) == 1
    assert len(_awaits(a["ndvi"].data[:100, 200:300])) == 2
    assert len(_awaits(a["ndvi"].data)) == 6
    # the same call again buys nothing
    _run(gdf, setup, "tiled", max_request_px=300)
    assert _creates(emu) == 7


def test_a_tiled_row_with_mask_equals_the_masked_whole_row(setup):
    gdf = _big_row()  # at 20 m: 350 x 250 px in 6 tiles, as cheap as the property allows
    tiled = _run(gdf, setup, "tiled-m", resolution=20, max_request_px=128, mask=True)
    assert _creates(setup[0]) == 6
    whole = _run(gdf, setup, "whole-m", resolution=20, mask=True)
    a, b = tiled[0]["ndvi"].values, whole[0]["ndvi"].values
    assert np.isnan(a).any() and not np.isnan(a).all()
    np.testing.assert_array_equal(a, b)


def test_a_failed_tile_fails_its_row_and_only_it_is_bought_again(setup):
    emu = setup[0]
    gdf = _big_row()
    emu.configure(faults=Faults(failure_rate=0.5, seed=3))
    # at 20 m (350 x 250 px): the same 6 tiles as at 10 m with 300, at a quarter of the pixels
    kw = {"resolution": 20, "max_request_px": 150}
    first = _run(gdf, setup, "faulty", **kw)
    assert _creates(emu) == 6
    status = first.status()
    assert list(status["state"]) == ["failed"]
    error = str(status["error"].iloc[0])
    assert "tile (" in error, error
    failed = error.count("tile (")
    assert 1 <= failed <= 5
    with pytest.raises(xasync.ProcessingError, match=r"tile \("):
        first[0]["ndvi"].values  # noqa: B018 - computing it raises
    emu.configure(faults=Faults())
    again = _run(gdf, setup, "faulty", resubmit_failed=True, **kw)
    assert _creates(emu) == 6 + failed  # the delivered tiles were kept
    assert list(again.status()["state"]) == ["done"]
    whole = _run(gdf, setup, "whole-f", resolution=20)
    np.testing.assert_array_equal(again[0]["ndvi"].values, whole[0]["ndvi"].values)


def _two_clusters() -> gpd.GeoDataFrame:
    geoms = []
    for lon0, lat0 in ((14.0, 46.0), (14.3, 46.2)):
        for i in range(6):
            x, y = lon0 + 0.003 * (i % 3), lat0 + 0.002 * (i // 3)
            geoms.append(box(x, y, x + 0.0012, y + 0.0009).buffer(0.0002, quad_segs=2))
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(12)]},
        geometry=geoms,
        crs=4326,
        index=[f"field-{i}" for i in range(12)],
    )


def test_packed_fields_cost_a_quarter_and_equal_their_unpacked_values(setup):
    emu = setup[0]
    gdf = _two_clusters()
    alone = _run(gdf, setup, "alone", crs="utm", mask=True)
    assert _creates(emu) == 12
    packed = _run(gdf, setup, "packed", crs="utm", mask=True, pack=True, pack_max_px=PACK_MAX_PX)
    bought = _creates(emu) - 12
    assert 1 <= bought <= 4
    s_alone, s_packed = alone.status(), packed.status()
    assert (s_alone["state"] == "done").all() and (s_packed["state"] == "done").all()
    assert s_packed["requests"].nunique() == bought
    charged_alone = float(s_alone["cost_pu"].sum())
    charged_packed = float(s_packed["cost_pu"].sum())
    assert charged_alone == pytest.approx(120.0)
    assert charged_packed <= charged_alone / 4
    assert charged_packed == pytest.approx(packed.cost)
    for label in gdf.index:
        a, b = packed[label], alone[label]
        np.testing.assert_array_equal(a.x.values, b.x.values)
        np.testing.assert_array_equal(a.y.values, b.y.values)
        assert a.rio.transform() == b.rio.transform()
        va, vb = a["ndvi"].values, b["ndvi"].values
        assert np.isnan(vb).any() and not np.isnan(vb).all()
        np.testing.assert_array_equal(va, vb)  # NaN for NaN
    # re-ordered rows: the same packs, nothing bought
    _run(gdf.iloc[::-1], setup, "packed", crs="utm", mask=True, pack=True, pack_max_px=PACK_MAX_PX)
    assert _creates(emu) == 12 + bought


def test_estimate_reports_requests_and_pu_for_every_mode():
    big, small = _big_row(), _two_clusters()
    one = big.xasync.estimate(NDVI, time=TIME, resolution=10)
    assert one["estimated_pu"].sum() == pytest.approx(10.0)
    tiled = big.xasync.estimate(NDVI, time=TIME, resolution=10, max_request_px=300)
    assert len(str(tiled["requests"].iloc[0]).split()) == 6
    assert tiled["estimated_pu"].sum() == pytest.approx(60.0)
    alone = small.xasync.estimate(NDVI, time=TIME, resolution=10, crs="utm")
    packed = small.xasync.estimate(NDVI, time=TIME, resolution=10, crs="utm", pack=True)
    assert alone.attrs["total_pu"] == pytest.approx(120.0)
    assert packed["requests"].nunique() <= 4
    assert packed["estimated_pu"].sum() == pytest.approx(packed.attrs["total_pu"])
    assert packed.attrs["total_pu"] <= 30.0


def test_open_delivery_reads_tiled_and_packed_rows_again(setup):
    emu, client, root = setup
    big, small = _big_row(), _two_clusters()
    tiled = _run(big, setup, "again/tiled", max_request_px=300)
    packed = _run(
        small, setup, "again/packed", crs="utm", mask=True, pack=True, pack_max_px=PACK_MAX_PX
    )
    bought = _creates(emu)
    for prefix, first in (("again/tiled", tiled), ("again/packed", packed)):
        res = xasync.open_delivery(f"{root}/{prefix}", emu.storage_options, client=client)
        res.wait(timeout=WAIT_S, progress=False)
        assert (res.status()["state"] == "done").all()
        assert len(res) == len(first)
        for label in first.labels:
            np.testing.assert_array_equal(res[label]["ndvi"].values, first[label]["ndvi"].values)
    assert _creates(emu) == bought  # nothing bought again


TWO_OUTPUTS = """//VERSION=3
function setup() {
  return {
    input: ["B02", "B03", "B04", "B08", "dataMask"],
    output: [
      {id: "ndvi", bands: 1, sampleType: "FLOAT32"},
      {id: "rgb", bands: 3, sampleType: "UINT8"},
    ],
  };
}
function evaluatePixel(s) {
  return {ndvi: [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)],
          rgb: [s.B04 * 1000, s.B03 * 1000, s.B02 * 1000]};
}
"""


@pytest.mark.distributed
def test_tiled_row_with_two_outputs_on_a_local_cluster_equals_the_whole_row(setup, dask_client):
    emu, client, root = setup
    geom = shapely.Polygon(
        [(600000, 5500000), (604000, 5500300), (603500, 5503000), (600200, 5502600)]
    )
    gdf = gpd.GeoDataFrame(geometry=[geom], crs=32631)
    kw = {"resolution": 10, "chunks": 128, "mask": True}
    emu_kw = {"storage_options": emu.storage_options, "client": client, "time": TIME}
    tiled = gdf.xasync.process(
        TWO_OUTPUTS, delivery=f"{root}/two-t", max_request_px=200, **kw, **emu_kw
    )
    whole = gdf.xasync.process(TWO_OUTPUTS, delivery=f"{root}/two-w", **kw, **emu_kw)
    tiled.wait(timeout=WAIT_S, progress=False)
    whole.wait(timeout=WAIT_S, progress=False)
    assert _creates(emu) == 4 + 1
    a, b = tiled[0], whole[0]
    assert a["rgb"].dims == b["rgb"].dims and a["rgb"].shape == (3, 300, 400)
    on_cluster = a.compute()  # dask_client is the default scheduler
    local = b.compute(scheduler="threads")
    for name in ("ndvi", "rgb"):
        np.testing.assert_array_equal(on_cluster[name].values, local[name].values)
    assert np.isnan(local["ndvi"].values).any()
