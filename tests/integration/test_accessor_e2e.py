"""End to end: gdf.xasync.process against the emulator over HTTP, files read back from S3."""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import s3fs
import xarray as xr
from shapely.geometry import box

import xasync
from xasync.emulator import Faults

from ._shared import NDVI, TIME

TWO_OUTPUTS = """//VERSION=3
function setup() {
  return {
    input: ["B02", "B03", "B04", "B08"],
    output: [
      {id: "ndvi", bands: 1, sampleType: "FLOAT32"},
      {id: "rgb", bands: 3, sampleType: "UINT8"},
    ],
  };
}
function evaluatePixel(s) {
  return {ndvi: [(s.B08 - s.B04) / (s.B08 + s.B04)], rgb: [s.B04 * 255, s.B03 * 255, s.B02 * 255]};
}
"""


def fields_4326(n: int, *, lon0: float = 14.0, lat0: float = 46.0) -> gpd.GeoDataFrame:
    geoms = []
    for i in range(n):
        x, y = lon0 + 0.01 * (i % 5), lat0 + 0.01 * (i // 5)
        geoms.append(box(x, y, x + 0.004, y + 0.003).buffer(0.0004, quad_segs=2))
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(n)]},
        geometry=geoms,
        crs=4326,
        index=[f"field-{i}" for i in range(n)],
    )


def delivered_path(results, i: int, identifier: str) -> str:
    row = results.status().iloc[i]  # the request folder and id come from status(), not attrs
    return f"{row['requests']}/{row['request_id']}/{identifier}.tif"


def read_direct(emu, url: str) -> tuple[np.ndarray, rasterio.Affine, rasterio.crs.CRS]:
    fs = s3fs.S3FileSystem(**emu.storage_options)
    with fs.open(url, "rb") as f, rasterio.open(f) as src:
        return src.read(), src.transform, src.crs


def test_polygons_in_4326_lazy_then_values_equal_the_file(e2e):
    emu, client, root = e2e
    gdf = fields_4326(3)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0001,
        delivery=f"{root}/ndvi",
        storage_options=emu.storage_options,
        client=client,
    )
    # known before delivery: dims, coords, CRS, dtype
    ds = results[0]
    assert ds["ndvi"].dims == ("y", "x")
    assert ds["ndvi"].dtype == np.float32
    assert ds.rio.crs.to_epsg() == 4326
    assert len(results) == 3
    assert list(results.datasets.index) == list(gdf.index)

    results.wait(timeout=60, progress=False)
    status = results.status()
    assert (status["state"] == "done").all(), status
    assert status["cost_pu"].gt(0).all()
    for i in range(3):
        data, transform, crs = read_direct(emu, delivered_path(results, i, "ndvi"))
        ds = results[i]
        got = ds["ndvi"].compute()
        np.testing.assert_array_equal(got.values, data[0])
        # pixel centres of the lazy Dataset are those of the delivered file, exactly
        assert np.array_equal(
            ds.x.values, transform.c + (np.arange(data.shape[2]) + 0.5) * transform.a
        )
        assert np.array_equal(
            ds.y.values, transform.f + (np.arange(data.shape[1]) + 0.5) * transform.e
        )
        assert crs.to_epsg() == 4326


def test_utm_auto_bbox_two_outputs_and_mask(e2e):
    emu, client, root = e2e
    gdf = fields_4326(2, lon0=11.9)  # crosses from UTM 32N into 33N at 12°E
    gdf.loc["field-1", "geometry"] = box(12.01, 46.0, 12.015, 46.004)
    results = gdf.xasync.process(
        TWO_OUTPUTS,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery=f"{root}/two",
        storage_options=emu.storage_options,
        client=client,
        bounds="bbox",
    )
    assert [ds.rio.crs.to_epsg() for ds in results] == [32632, 32633]
    ds = results[0]
    assert set(ds.data_vars) == {"ndvi", "rgb"}
    assert ds["rgb"].dims == ("band", "y", "x")
    assert ds["rgb"].dtype == np.uint8
    results.wait(timeout=60, progress=False)
    for i in range(2):
        rgb, transform, crs = read_direct(emu, delivered_path(results, i, "rgb"))
        np.testing.assert_array_equal(results[i]["rgb"].values, rgb)
        assert crs.to_epsg() == results[i].rio.crs.to_epsg()
        assert results[i].rio.transform() == transform
        # bbox mode: no pixel zeroed by the geometry
        assert (rgb[0] > 0).all()

    masked = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery=f"{root}/masked",
        storage_options=emu.storage_options,
        client=client,
        mask=True,
    )
    masked.wait(timeout=60, progress=False)
    values = masked[0]["ndvi"].values
    assert np.isnan(values).any() and np.isfinite(values).any()
    unmasked, *_ = read_direct(emu, delivered_path(masked, 0, "ndvi"))
    inside = np.isfinite(values)
    np.testing.assert_array_equal(values[inside], unmasked[0][inside])


def test_concurrency_limit_rerun_and_reattach(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=2, processing_seconds=0.2)
    gdf = fields_4326(10)
    kwargs = dict(
        time=TIME,
        resolution=0.0002,
        delivery=f"{root}/ten",
        storage_options=emu.storage_options,
        client=client,
    )
    first = gdf.xasync.process(NDVI, **kwargs).wait(timeout=120, progress=False)
    stats = emu.stats
    assert stats["max_running"] <= 2
    assert stats["creates"] == 10
    assert (first.status()["state"] == "done").all()
    means = [float(ds["ndvi"].mean().compute()) for ds in first]

    # the same call again buys nothing
    again = gdf.xasync.process(NDVI, **kwargs).wait(timeout=60, progress=False)
    assert emu.stats["creates"] == 10
    status = again.status()
    assert status["reused"].all() and (status["cost_pu"] == 0).all()
    assert [float(ds["ndvi"].mean().compute()) for ds in again] == means

    # re-attach from S3 alone
    attached = xasync.open_delivery(f"{root}/ten", storage_options=emu.storage_options)
    attached.wait(timeout=60, progress=False)
    assert list(attached.datasets.index) == list(gdf.index)
    assert [float(ds["ndvi"].mean().compute()) for ds in attached] == means
    assert emu.stats["creates"] == 10


def test_failed_row_raises_on_compute_others_compute(e2e):
    emu, client, root = e2e
    emu.configure(faults=Faults(failure_rate=0.4, seed=3))
    gdf = fields_4326(6)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=f"{root}/fail",
        storage_options=emu.storage_options,
        client=client,
    )
    results.wait(timeout=60, progress=False)
    status = results.status()
    failed = status[status["state"] == "failed"]
    done = status[status["state"] == "done"]
    assert len(failed) >= 1 and len(done) >= 1, status
    assert failed["error"].str.len().gt(0).all()
    for label in failed.index:
        with pytest.raises(
            xasync.ProcessingError, match=re.escape(failed.loc[label, "error"][:20])
        ):
            results.datasets.loc[label].compute()
    for label in done.index:
        assert results.datasets.loc[label]["ndvi"].notnull().any().compute()


def test_bad_input_sends_nothing(e2e):
    emu, client, root = e2e
    gdf = fields_4326(2)
    with pytest.raises(xasync.ValidationError, match="resolution"):
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            size=(10, 10),
            delivery=f"{root}/x",
            storage_options=emu.storage_options,
            client=client,
        )
    with pytest.raises(xasync.ValidationError, match="delivery"):
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery="/tmp/x",
            storage_options=emu.storage_options,
            client=client,
        )
    with pytest.raises(xasync.ValidationError, match="bucket"):
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery="s3://no-such-bucket-here/x",
            storage_options=emu.storage_options,
            client=client,
        )
    bad_client = xasync.Client(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=emu.client_id,
        client_secret="wrong",
    )
    with pytest.raises(xasync.AuthError):
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery=f"{root}/x",
            storage_options=emu.storage_options,
            client=bad_client,
        )
    assert emu.stats["create_calls"] == 0


def test_dataset_is_lazy_and_pickles_without_sh_secret(e2e):
    import cloudpickle

    emu, client, root = e2e
    gdf = fields_4326(2)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=f"{root}/lazy",
        storage_options=emu.storage_options,
        client=client,
    )
    blob = cloudpickle.dumps(results[0].__dask_graph__())
    assert emu.client_secret.encode() not in blob
    assert isinstance(results[0], xr.Dataset)
    results.wait(timeout=60, progress=False)


def test_geodataframe_in_utm_keeps_its_crs(e2e):
    emu, client, root = e2e
    gdf = fields_4326(3).to_crs(32633)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=20,
        delivery=f"{root}/utm",
        storage_options=emu.storage_options,
        client=client,
    )
    assert {ds.rio.crs.to_epsg() for ds in results} == {32633}
    # the grid is snapped to whole multiples of the resolution
    for ds in results:
        t = ds.rio.transform()
        assert t.a == 20
        assert t.e == -20
        assert t.c % 20 == 0
        assert t.f % 20 == 0
    results.wait(timeout=60, progress=False)
    for i in range(3):
        data, transform, crs = read_direct(emu, delivered_path(results, i, "ndvi"))
        assert crs.to_epsg() == 32633
        assert transform == results[i].rio.transform()
        np.testing.assert_array_equal(results[i]["ndvi"].values, data[0])


@pytest.mark.distributed
def test_results_compute_on_a_local_cluster_like_locally(e2e, dask_client):
    """Workers in other processes read the deliveries with the storage_options only."""
    emu, client, root = e2e
    gdf = fields_4326(4)
    results = gdf.xasync.process(
        TWO_OUTPUTS,
        time=TIME,
        resolution=0.0001,
        delivery=f"{root}/cluster",
        storage_options=emu.storage_options,
        client=client,
        chunks=16,
    ).wait(timeout=60, progress=False)
    local = [ds.compute(scheduler="threads") for ds in results]
    remote = dask_client.compute(list(results), sync=True)
    # a per-field reduction, the typical cluster workload
    means = dask_client.compute([ds["ndvi"].mean() for ds in results], sync=True)
    for a, b in zip(local, remote, strict=True):
        xr.testing.assert_identical(a, b)
    for ds, m in zip(local, means, strict=True):
        assert float(m) == pytest.approx(float(ds["ndvi"].mean()))


def test_building_1000_rows_touches_no_network_beyond_the_submission(e2e):
    """process() on 1000 rows: one manifest PUT, one probe listing, claims; no reads, no status.

    Every create is refused (429), so no request can run and no status call can come from the
    submitter whatever the machine's speed: any status call or object read would be the build's.
    """
    emu, client, root = e2e
    emu.configure(
        concurrency_limit=1,
        processing_seconds=0.2,
        faults=Faults(rate_limit=1.0, retry_after_ms=200, seed=3),
    )
    gdf = fields_4326(1000)
    before = emu.stats
    try:
        results = gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery=f"{root}/thousand",
            storage_options=emu.storage_options,
            client=client,
        )
        datasets = list(results)  # every Dataset built: coords, CRS, dtypes known
        assert len(datasets) == 1000
        assert all(ds["ndvi"].dtype == np.float32 for ds in datasets)
        after = emu.stats
        results.cancel()
        results.wait(timeout=60, progress=False)
    finally:
        emu.configure(faults=Faults())
    s3_before, s3_after = before["s3"], after["s3"]
    # no object was read and no status asked while the results were built
    assert s3_after["get"] == s3_before["get"]
    assert s3_after["get_ranged"] == s3_before["get_ranged"]
    assert after["status_calls"] == before["status_calls"]
    # the submission itself: one probe listing, the manifest, and one claim per create attempt
    # (each refused attempt drops its claim; at most one attempt per slot is still unanswered,
    # and, once this account learned short durations in an earlier test, at most K more rows
    # claim ahead while they wait for a slot: Account.ahead);
    # before planning, the look for earlier deliveries lists the root (twice when it is new)
    assert s3_after["list"] - s3_before["list"] <= 3
    claims = s3_after["put"] - s3_before["put"] - 1
    refused = after["rate_limited"] - before["rate_limited"]
    k = client.config.concurrency or 64
    assert 0 <= claims <= refused + 2 * k
    status = results.status()
    assert (status["state"] == "failed").all()
    assert status["error"].str.contains("cancelled").all()
    assert emu.stats["creates"] == before["creates"]  # nothing bought, before or after the cancel


def test_info_log_says_what_is_bought_and_never_logs_polls(e2e, caplog):
    """Issue 16 (10): status polls are DEBUG; "submitting N" only counts rows really created."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=2, processing_seconds=0.4)
    gdf = fields_4326(3)
    kwargs = dict(
        time=TIME,
        resolution=0.0002,
        delivery=f"{root}/logs",
        storage_options=emu.storage_options,
        client=client,
    )
    with caplog.at_level("INFO", logger="xasync"):
        gdf.xasync.process(NDVI, **kwargs).wait(timeout=60, progress=False)
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert emu.stats["status_calls"] >= 1  # there were polls ...
    assert not [m for m in info if m.startswith("GET ")], info  # ... none of them at INFO
    assert [m for m in info if m.startswith("submitting 3 requests")], info
    caplog.clear()
    with caplog.at_level("INFO", logger="xasync"):
        gdf.xasync.process(NDVI, **kwargs).wait(timeout=60, progress=False)  # all reused
    assert not [r for r in caplog.records if "submitting" in r.getMessage()]
