"""A row already bought alone is reused by a later ``pack=True`` call, never bought in a pack."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

import xasync
from xasync.planned import plan_specs
from xasync.request import build_specs

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")
WAIT_S = 300
ALONE = ["field-0", "field-1", "field-7"]


def _fields() -> gpd.GeoDataFrame:
    """12 small fields in two clusters (farther apart than ``pack_max_px=400``)."""
    geoms = []
    for lon0, lat0 in ((14.0, 46.0), (14.3, 46.2)):
        for i in range(6):
            x, y = lon0 + 0.003 * (i % 3), lat0 + 0.002 * (i // 3)
            geoms.append(box(x, y, x + 0.0012, y + 0.0009).buffer(0.0002, quad_segs=2))
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"field-{i}" for i in range(12)])


def _process(gdf, emu, client, delivery, *, mask=True, **kw):
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        mask=mask,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    return res


def test_plan_keeps_rows_alone_under_their_own_request():
    specs = build_specs(
        _fields(),
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery="s3://my-bucket/fields",
        tiled=True,
    )
    packed = plan_specs(specs, pack=True, pack_max_px=400)
    kept = plan_specs(specs, pack=True, pack_max_px=400, keep_alone={0, 7})
    for i in (0, 7):
        assert packed.sources[i][0].row_url != specs[i].row_url  # packed when nothing exists
        (source,) = kept.sources[i]
        assert (source.row_url, source.token, source.name) == (
            specs[i].row_url,
            specs[i].token,
            "request",
        )
    assert all(kept.sources[i][0].name.startswith("pack of") for i in (1, 2, 3, 8, 9))


def test_rows_bought_alone_are_reused_by_a_packed_call(emu):
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    root = emu.create_bucket(f"reuse-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)
    gdf = _fields()
    first = _process(gdf.loc[ALONE], emu, client, f"{root}/f")
    assert int(emu.stats["creates"]) == 3
    packed = _process(gdf, emu, client, f"{root}/f", pack=True, pack_max_px=400)
    bought = int(emu.stats["creates"]) - 3
    status, alone = packed.status(), first.status()
    assert (status["state"] == "done").all()
    for label in ALONE:
        assert status.loc[label, "request_id"] == alone.loc[label, "request_id"]
        assert status.loc[label, "requests"] == alone.loc[label, "requests"]
        assert bool(status.loc[label, "reused"]) and status.loc[label, "cost_pu"] == 0.0
        np.testing.assert_array_equal(packed[label]["ndvi"].values, first[label]["ndvi"].values)
    others = status.drop(index=ALONE)
    assert 2 <= bought <= 4 and others["requests"].nunique() == bought
    assert not set(others["requests"]) & set(alone["requests"])
    assert packed.cost == pytest.approx(float(others["cost_pu"].sum()))
    # the same packed call again buys nothing: the same rows stay alone, the same packs
    again = _process(gdf, emu, client, f"{root}/f", pack=True, pack_max_px=400)
    assert int(emu.stats["creates"]) == 3 + bought
    assert list(again.status()["requests"]) == list(status["requests"])


def test_a_delivered_pack_is_still_reused_after_one_of_its_rows_was_bought_alone(emu):
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    root = emu.create_bucket(f"reuse-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)
    gdf = _fields()
    packed = _process(gdf, emu, client, f"{root}/g", pack=True, pack_max_px=400)
    bought = int(emu.stats["creates"])
    # the same field alone, unmasked: not read from its pack (not exact, xasync.pack_reuse)
    _process(gdf.loc[["field-0"]], emu, client, f"{root}/g", mask=False)
    assert int(emu.stats["creates"]) == bought + 1
    again = _process(gdf, emu, client, f"{root}/g", pack=True, pack_max_px=400)
    assert int(emu.stats["creates"]) == bought + 1  # its pack exists: nothing bought again
    assert list(again.status()["requests"]) == list(packed.status()["requests"])
