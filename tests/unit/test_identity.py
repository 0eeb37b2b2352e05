"""Request identity is what is bought (#13 item 1): labels, positions and float noise play no part."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from dask.base import tokenize
from shapely.geometry import box

from xasync.geometry import round_decimals
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {ndvi: [0]}; }
"""
TIME = ("2023-06-01", "2023-06-30")


def fields(n: int = 5) -> gpd.GeoDataFrame:
    geoms = [box(14.5 + 0.02 * i, 46.0, 14.51 + 0.02 * i, 46.01) for i in range(n)]
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(n)]},
        geometry=geoms,
        index=[f"row-{i}" for i in range(n)],
        crs="EPSG:4326",
    )


def tokens(gdf: gpd.GeoDataFrame, script: str = ES, **kw) -> dict:
    args = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/runs/a"}
    args.update(kw)
    return {s.label: s.token for s in build_specs(gdf, script, **args)}


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda g: g.iloc[::-1], id="reordered"),
        pytest.param(lambda g: g.iloc[[1, 3]], id="filtered"),
        pytest.param(lambda g: g.reset_index(drop=True), id="reset_index"),
        pytest.param(lambda g: g.reset_index(), id="reset_index-keep"),
        pytest.param(lambda g: g.set_index(g["name"] + "!", drop=False), id="new-labels"),
    ],
)
def test_rows_moved_around_keep_their_tokens(move):
    gdf = fields()
    before = dict(zip(gdf["name"], tokens(gdf).values(), strict=True))
    moved = move(gdf)
    after = dict(zip(moved["name"], tokens(moved).values(), strict=True))
    assert after == {k: before[k] for k in after}


def test_duplicated_rows_share_one_token():
    gdf = fields(3)
    doubled = gdf.iloc[[0, 1, 2, 0, 1, 2]].reset_index(drop=True)
    t = list(tokens(doubled).values())
    assert t[:3] == t[3:]
    assert len(set(t)) == 3


@pytest.mark.parametrize("crs", ["utm", None])
def test_reprojected_and_back_keeps_tokens(crs):
    gdf = fields()
    res = 10 if crs == "utm" else 0.0001
    back = gdf.to_crs(3857).to_crs(32633).to_crs(4326)
    moved = np.abs(np.asarray(back.get_coordinates()) - np.asarray(gdf.get_coordinates()))
    assert moved.max() > 0  # the round trip did add float noise
    assert tokens(back, crs=crs, resolution=res) == tokens(gdf, crs=crs, resolution=res)


def test_size_mode_bbox_is_noise_free_too():
    gdf = fields()
    back = gdf.to_crs(3857).to_crs(4326)
    kw = {"crs": None, "resolution": None, "size": (64, 64)}
    assert tokens(back, **kw) == tokens(gdf, **kw)


def test_a_changed_request_changes_the_token():
    gdf = fields(2)
    base = tokens(gdf)
    assert tokens(gdf, time=("2023-06-01", "2023-06-29")).values() != base.values()
    assert set(tokens(gdf, resolution=20).values()).isdisjoint(base.values())
    assert set(tokens(gdf, script=ES.replace("[0]", "[1]")).values()).isdisjoint(base.values())
    shifted = gdf.set_geometry(gdf.translate(0.001))
    assert set(tokens(shifted).values()).isdisjoint(base.values())


def test_equality_and_dask_tokenize_ignore_labels():
    a = build_specs(fields(1), ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/p")[0]
    other = fields(1).rename(index={"row-0": "something-else"})
    b = build_specs(other, ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/p")[0]
    assert a.label != b.label
    assert a == b
    assert tokenize(a) == tokenize(b)
    c = build_specs(other, ES, time=TIME, resolution=10, crs="utm", delivery="s3://bkt/q")[0]
    assert a.token == c.token and a.row_url != c.row_url and a != c


def test_edited_referenced_script_changes_the_token(s3_server, s3fs_fs, bucket):
    url = f"s3://{bucket}/scripts/ndvi.js"
    so = s3_server.storage_options
    s3fs_fs.pipe(url, ES.encode())
    first = tokens(fields(2), script=url, storage_options=so)
    assert tokens(fields(2), script=url, storage_options=so) == first
    s3fs_fs.pipe(url, ES.replace("[0]", "[2]").encode())
    edited = tokens(fields(2), script=url, storage_options=so)
    assert set(edited.values()).isdisjoint(first.values())
    # with outputs= covering every response the script is still read for its digest
    kw = {"outputs": {"ndvi": {"bands": 1, "sampleType": "FLOAT32"}}, "storage_options": so}
    assert tokens(fields(2), script=url, **kw) == edited


@pytest.mark.parametrize(("pixel", "decimals"), [(10, 2), (20, 2), (60, 2), (1, 3), (1e-4, 7)])
def test_rounding_is_at_most_a_thousandth_of_a_pixel(pixel, decimals):
    assert round_decimals(pixel) == decimals
    assert 10.0**-decimals <= pixel / 1000 * (1 + 1e-9)
    assert round_decimals(pixel * (1 + 1e-12)) == round_decimals(pixel * (1 - 1e-12))
