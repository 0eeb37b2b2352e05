"""A request is identified by what is bought (#13 item 1), counted with the emulator's creates.

Re-ordered, filtered, re-indexed, duplicated or reprojected rows buy nothing new; two rows with
the same geometry in one frame share one request; an edited referenced script is a new request
with new values.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest

import xasync

from ._shared import NDVI, TIME, fields


@pytest.fixture
def run(emu):
    emu.configure(processing_seconds=0.05, concurrency_limit=4)
    root = emu.create_bucket(f"ident-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)

    def call(gdf, script=NDVI, where="a"):
        results = gdf.xasync.process(
            script,
            time=TIME,
            resolution=10,
            crs="utm",
            delivery=f"{root}/{where}",
            storage_options=emu.storage_options,
            client=client,
        )
        return results.wait(timeout=120, progress=False)

    yield emu, root, call
    client.close()


def means(results) -> list[float]:
    return [float(ds["ndvi"].mean().compute()) for ds in results]


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda g: g.iloc[::-1], id="reordered"),
        pytest.param(lambda g: g.iloc[[0, 2]], id="filtered"),
        pytest.param(lambda g: g.reset_index(drop=True), id="reset_index"),
        pytest.param(lambda g: g.iloc[[0, 1, 2, 0]], id="duplicated"),
        pytest.param(lambda g: g.to_crs(3857).to_crs(4326), id="reprojected"),
    ],
)
def test_moved_rows_buy_nothing_new(run, move):
    emu, _, call = run
    gdf = fields(3, lat0=47.0)
    first = call(gdf)
    creates = emu.stats["creates"]
    assert creates == 3
    by_name = dict(zip(gdf["name"], means(first), strict=True))
    moved = move(gdf)
    again = call(moved)
    assert emu.stats["creates"] == creates  # nothing bought again
    assert means(again) == [by_name[n] for n in moved["name"]]


def test_duplicated_geometry_in_one_frame_is_one_request(run):
    emu, _, call = run
    gdf = fields(1, lat0=47.5)
    twin = gpd.GeoDataFrame(
        {"name": ["a", "b"]}, geometry=[gdf.geometry.iloc[0]] * 2, crs=4326, index=["a", "b"]
    )
    results = call(twin)
    assert emu.stats["creates"] == 1
    assert results[0].encoding["xasync"]["row_url"] == results[1].encoding["xasync"]["row_url"]
    a, b = means(results)
    assert a == b and np.isfinite(a)


def test_edited_referenced_script_is_a_new_request_with_new_values(run):
    emu, root, call = run
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options)
    url = f"{root}/scripts/ndvi.js"
    fs.pipe(url, NDVI.encode())
    gdf = fields(2, lat0=48.0)
    first = call(gdf, script=url)
    assert emu.stats["creates"] == 2
    call(gdf, script=url)
    assert emu.stats["creates"] == 2  # unchanged script: reused
    fs.pipe(url, NDVI.replace("[(s.B08 - s.B04)", "[2 * (s.B08 - s.B04)").encode())
    edited = call(gdf, script=url)
    assert emu.stats["creates"] == 4
    assert [r != f for r, f in zip(means(edited), means(first), strict=True)] == [True, True]
