"""xasync.lazy: lazy Datasets built before delivery, computed from real GeoTIFFs on moto S3."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import cloudpickle
import dask
import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import box

from xasync import reader as rd
from xasync._contract import ERROR_FILE, REQUEST_COPY_FILE
from xasync.errors import DeliveryTimeout, OptionError, ProcessingError, ValidationError
from xasync.grid import PixelGrid
from xasync.lazy import build_dataset, normalize_chunks
from xasync.ledger import LEDGER, Entry, Stage
from xasync.plan import OutputPlan, ReadPlan
from xasync.reader import ReaderConfig
from xasync.windows import WindowSource

GRID = PixelGrid(32633, (500_000.0, 4_997_000.0, 504_200.0, 5_000_000.0), 420, 300)
OUTPUTS = (OutputPlan("rgb", 3, "uint16", nodata=0.0), OutputPlan("ndvi", 1, "float32"))


@pytest.fixture(autouse=True)
def _clean():
    LEDGER.clear()
    rd.clear_cache()
    yield
    LEDGER.clear()
    rd.clear_cache()


@pytest.fixture
def config(s3_server):
    return ReaderConfig(storage_options=s3_server.storage_options)


def make_plan(bucket: str, *, label="row-0", outputs=OUTPUTS, mask_wkb=None, grid=GRID) -> ReadPlan:
    token = uuid.uuid4().hex
    return ReadPlan(
        token=token,
        row_url=f"s3://{bucket}/deliveries/{token[:16]}",
        grid=grid,
        outputs=outputs,
        label=label,
        time_range=("2024-06-01T00:00:00Z", "2024-06-30T23:59:59Z"),
        mask_wkb=mask_wkb,
    )


def deliver(fs, tmp_path, plan: ReadPlan, request_id: str = "REQ-1", *, tiled=True) -> dict:
    """Write the plan's outputs as the service would: ``<row_url>/<id>/<identifier>.tif``."""
    rng = np.random.default_rng(7)
    arrays = {}
    for out in plan.outputs:
        shape = (out.bands, plan.grid.height, plan.grid.width)
        if np.dtype(out.dtype).kind == "f":
            data = rng.random(shape).astype(out.dtype)
        else:
            data = rng.integers(0, 3000, size=shape).astype(out.dtype)
        local = tmp_path / f"{uuid.uuid4().hex}.tif"
        profile = {
            "driver": "GTiff",
            "width": plan.grid.width,
            "height": plan.grid.height,
            "count": out.bands,
            "dtype": out.dtype,
            "crs": f"EPSG:{plan.grid.epsg}",
            "transform": plan.grid.transform,
            "nodata": out.nodata,
        }
        if tiled:
            profile.update(tiled=True, blockxsize=128, blockysize=128, compress="deflate")
        with rasterio.open(local, "w", **profile) as dst:
            dst.write(data)
        fs.put_file(str(local), f"{plan.row_url}/{request_id}/{out.identifier}.tif")
        arrays[out.identifier] = data
    return arrays


def test_built_before_delivery_then_computed_from_s3(s3fs_fs, tmp_path, bucket, config):
    plan = make_plan(bucket)
    ds = build_dataset(plan, reader=config, chunks=128, wait_timeout=60, poll_interval=0.1)

    # Everything is known before any file exists.
    assert ds["rgb"].dims == ("band", "y", "x")
    assert ds["ndvi"].dims == ("y", "x")
    assert ds["rgb"].dtype == np.uint16
    assert ds["ndvi"].dtype == np.float32
    assert ds["rgb"].shape == (3, 300, 420)
    assert list(ds["band"].values) == [1, 2, 3]
    assert ds.rio.crs.to_epsg() == 32633
    assert ds["rgb"].rio.nodata == 0
    assert ds["ndvi"].rio.nodata is None
    assert ds["ndvi"].rio.crs.to_epsg() == 32633
    assert "spatial_ref" in ds.coords
    assert ds.rio.transform() == GRID.transform
    assert ds["rgb"].data.chunks == ((3,), (128, 128, 44), (128, 128, 128, 36))
    assert ds.encoding["xasync"] == {"token": plan.token, "row_url": plan.row_url, "label": "row-0"}
    assert ds.attrs == {"time_from": plan.time_range[0], "time_to": plan.time_range[1]}

    # The request copy lands first; outputs follow while the await task is polling.
    s3fs_fs.pipe_file(f"{plan.row_url}/REQ-1/{REQUEST_COPY_FILE}", b"{}")
    arrays = {}
    writer = threading.Timer(0.5, lambda: arrays.update(deliver(s3fs_fs, tmp_path, plan)))
    writer.start()
    try:
        got = ds.compute(scheduler="threads")
    finally:
        writer.join()

    key = f"{plan.row_url}/REQ-1/rgb.tif"
    with rasterio.open(key, opener=s3fs_fs) as src:
        direct = src.read()
        transform = src.transform
        cols = np.arange(src.width)
        rows = np.arange(src.height)
        xs, _ = rasterio.transform.xy(transform, np.zeros_like(cols), cols, offset="center")
        _, ys = rasterio.transform.xy(transform, rows, np.zeros_like(rows), offset="center")
    np.testing.assert_array_equal(got["rgb"].values, direct)
    np.testing.assert_array_equal(got["ndvi"].values, arrays["ndvi"][0])
    # Coordinates are the delivered file's pixel centres, exactly.
    np.testing.assert_array_equal(ds["x"].values, xs)
    np.testing.assert_array_equal(ds["y"].values, ys)
    assert ds.rio.transform() == transform


def test_striped_file_and_one_chunk(s3fs_fs, tmp_path, bucket, config):
    plan = make_plan(bucket, outputs=(OutputPlan("default", 2, "int16"),))
    arrays = deliver(s3fs_fs, tmp_path, plan, tiled=False)
    ds = build_dataset(plan, reader=config, wait_timeout=10, poll_interval=0.1)
    assert ds["default"].data.numblocks == (1, 1, 1)  # default 2048 px chunks
    np.testing.assert_array_equal(ds["default"].values, arrays["default"])


def test_mask_gives_nan_outside_the_geometry(s3fs_fs, tmp_path, bucket, config):
    minx, miny, maxx, maxy = GRID.bbox
    geom = box(minx, miny, minx + (maxx - minx) / 2, maxy)  # west half
    plan = make_plan(bucket, mask_wkb=shapely.to_wkb(geom))
    arrays = deliver(s3fs_fs, tmp_path, plan)
    ds = build_dataset(plan, reader=config, chunks=(100, 150), wait_timeout=10, poll_interval=0.1)
    assert ds["rgb"].dtype == np.float32
    assert np.isnan(ds["rgb"].rio.nodata)
    rgb = ds["rgb"].values
    west, east = rgb[:, :, :210], rgb[:, :, 210:]
    assert np.isnan(east).all()
    expected = arrays["rgb"][:, :, :210].astype("float32")
    expected[expected == 0] = np.nan  # nodata becomes NaN as well
    np.testing.assert_array_equal(west, expected)
    ndvi = ds["ndvi"].values
    assert np.isnan(ndvi[:, 210:]).all()
    np.testing.assert_array_equal(ndvi[:, :210], arrays["ndvi"][0, :, :210])


def test_error_json_raises_processing_error_and_other_rows_compute(
    s3fs_fs, tmp_path, bucket, config
):
    bad = make_plan(bucket, label=3)
    good = make_plan(bucket, label=4)
    s3fs_fs.pipe_file(f"{bad.row_url}/REQ-9/{ERROR_FILE}", b'{"message": "Evalscript failed"}')
    arrays = deliver(s3fs_fs, tmp_path, good)
    ds_bad = build_dataset(bad, reader=config, wait_timeout=10, poll_interval=0.1)
    ds_good = build_dataset(good, reader=config, wait_timeout=10, poll_interval=0.1)
    with pytest.raises(ProcessingError, match="Evalscript failed") as info:
        ds_bad.compute()
    assert info.value.request_id == "REQ-9"
    assert info.value.row == 3
    assert info.value.message == "Evalscript failed"
    np.testing.assert_array_equal(ds_good["rgb"].values, arrays["rgb"])


def test_nothing_delivered_times_out(bucket, config):
    plan = make_plan(bucket)
    ds = build_dataset(plan, reader=config, wait_timeout=0.6, poll_interval=0.1)
    start = time.monotonic()
    with pytest.raises(DeliveryTimeout, match="within 0.6 s"):
        ds["ndvi"].values  # noqa: B018
    assert time.monotonic() - start < 60  # a guard against hanging, not a margin


def test_registry_outcome_skips_s3_listing(s3fs_fs, tmp_path, bucket, config):
    plan = make_plan(bucket)
    arrays = deliver(s3fs_fs, tmp_path, plan, request_id="REQ-7")
    outputs = {o.identifier: f"{plan.row_url}/REQ-7/{o.identifier}.tif" for o in plan.outputs}
    LEDGER.record(plan.row_url, Entry(plan.row_url, Stage.DONE, "REQ-7", outputs=outputs))
    fs = rd.filesystem_for(plan.row_url, config)  # the instance tasks use in this thread
    calls = []
    fs.s3.meta.events.register("before-call.s3", lambda event_name, **_: calls.append(event_name))
    ds = build_dataset(plan, reader=config, wait_timeout=5, poll_interval=0.1)
    np.testing.assert_array_equal(ds["rgb"].compute(scheduler="sync").values, arrays["rgb"])
    assert not [c for c in calls if c.endswith("ListObjectsV2")]
    # A failure recorded in-process raises without S3 either.
    failed = make_plan(bucket)
    LEDGER.record(failed.row_url, Entry(failed.row_url, Stage.FAILED, "R", error="boom"))
    with pytest.raises(ProcessingError, match="boom"):
        build_dataset(failed, reader=config, wait_timeout=5).compute(scheduler="sync")


def test_building_1000_datasets_touches_no_network(bucket, config, monkeypatch):
    connects = []

    def refuse(self, address, *args, **kwargs):
        connects.append(address)
        raise OSError("network used while building")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    plans = [make_plan(bucket, label=i) for i in range(1000)]
    start = time.perf_counter()
    datasets = [build_dataset(p, reader=config) for p in plans]
    elapsed = time.perf_counter() - start
    assert connects == []
    assert len({ds.encoding["xasync"]["token"] for ds in datasets}) == 1000
    print(f"build_dataset: {1000 / elapsed:.0f} rows/s")  # information only: no wall-clock bound
    # the work per row is constant: every row's graph has the same size, nothing accumulates
    # from one row to the next (a count, not a rate, so that a busy machine cannot fail it)
    assert len({len(ds.__dask_graph__()) for ds in datasets}) == 1


def test_graph_pickles_without_secrets(bucket, s3_server):
    plan = make_plan(bucket)
    ds = build_dataset(plan, reader=ReaderConfig())
    graph = dict(ds.__dask_graph__())
    blob = cloudpickle.dumps(graph)
    assert cloudpickle.loads(blob).keys() == graph.keys()
    for secret in ("testing-secret", "testing-key"):
        assert secret.encode() not in blob
        assert secret not in repr(ds.attrs)
    # Documented exception: options the user passes on purpose travel to the workers.
    with_opts = build_dataset(plan, reader=ReaderConfig(storage_options=s3_server.storage_options))
    blob = cloudpickle.dumps(dict(with_opts.__dask_graph__()))
    assert b"testing-secret" in blob
    assert "testing-secret" not in repr(with_opts.attrs)
    assert not any("testing-secret" in str(k) for k in with_opts.__dask_graph__())


def test_keys_are_deterministic_and_named(bucket, config, s3_server):
    plan = make_plan(bucket)
    a = build_dataset(plan, reader=config, chunks=64)
    b = build_dataset(
        plan, reader=ReaderConfig(storage_options=s3_server.storage_options), chunks=64
    )
    assert set(a.__dask_graph__()) == set(b.__dask_graph__())
    other = build_dataset(plan, reader=ReaderConfig(block_size=1 << 20), chunks=64)
    assert not set(a.__dask_graph__()) & set(other.__dask_graph__())
    awaits = [k for k in a.__dask_graph__() if str(k).startswith("await-delivery-")]
    assert len(awaits) == 1  # one per row, shared by both variables
    assert dask.base.tokenize(a) == dask.base.tokenize(b)
    for var in a.data_vars.values():  # one layer per array (fewer objects per row)
        assert list(var.data.dask.layers) == [var.data.name]
        assert set(var.data.dask) & set(awaits) == set(awaits)


def test_chunk_specs_and_validation(bucket, config):
    shape = (5000, 3000)
    assert normalize_chunks(None, shape) == ((2048, 2048, 904), (2048, 952))
    assert normalize_chunks(1000, shape) == ((1000,) * 5, (1000,) * 3)
    assert normalize_chunks((2500, 1500), shape) == ((2500, 2500), (1500, 1500))
    assert normalize_chunks({"y": 2500}, shape) == ((2500, 2500), (2048, 952))
    assert normalize_chunks({"x": -1, "y": 2500, "band": 1}, shape) == ((2500, 2500), (3000,))
    assert normalize_chunks(-1, shape) == ((5000,), (3000,))
    assert normalize_chunks((None, 1000), shape) == ((5000,), (1000,) * 3)
    assert normalize_chunks(((4000, 1000), (3000,)), shape) == ((4000, 1000), (3000,))
    auto_y, auto_x = normalize_chunks("auto", (20000, 20000), "float32")
    assert all(c % 512 == 0 for c in auto_y[:-1] + auto_x[:-1])  # multiples of the tile
    assert len(auto_y) > 1 and normalize_chunks("auto", shape) == ((5000,), (3000,))
    for bad in (0, -5, 1.5, (1, 2, 3), {"z": 4}, "big", "lots", True, ((1, 2), (3000,))):
        with pytest.raises(OptionError):
            normalize_chunks(bad, shape)
    plan = make_plan(bucket)
    with pytest.raises(ValidationError):
        build_dataset(plan, reader=config, wait_timeout=0)
    with pytest.raises(ValidationError):
        build_dataset(make_plan(bucket, outputs=()), reader=config)
    dup = (OutputPlan("a", 1, "uint8"), OutputPlan("a", 2, "uint8"))
    with pytest.raises(ValidationError):
        build_dataset(make_plan(bucket, outputs=dup), reader=config)


def test_multiband_outputs_with_different_band_counts(bucket, config):
    outs = (OutputPlan("rgb", 3, "uint8"), OutputPlan("bands", 4, "uint16"))
    ds = build_dataset(make_plan(bucket, outputs=outs), reader=config)
    assert ds["rgb"].dims == ("rgb_band", "y", "x")
    assert ds["bands"].dims == ("bands_band", "y", "x")
    assert list(ds["bands_band"].values) == [1, 2, 3, 4]


def test_fast_construction_equals_xarray_constructor(monkeypatch):
    """The direct Dataset construction gives exactly what xr.Dataset(...) gives."""
    import xarray as xr

    from xasync import lazy

    grid = PixelGrid(32633, (500000.0, 5000000.0, 500130.0, 5000090.0), 13, 9)
    outputs = (OutputPlan("ndvi", 1, "float32"), OutputPlan("rgb", 3, "uint8", nodata=0.0))
    plans = [
        ReadPlan("t" * 64, "s3://b/p/t", grid, outputs, label="a", time_range=("x", "y")),
        ReadPlan("u" * 64, "s3://b/p/u", grid, outputs[:1], mask_wkb=box(0, 0, 1, 1).wkb),
    ]
    config = ReaderConfig()
    fast = [build_dataset(p, reader=config, chunks=4) for p in plans]
    monkeypatch.setattr(lazy, "_FAST_CONSTRUCT", False)
    slow = [build_dataset(p, reader=config, chunks=4) for p in plans]
    for a, b in zip(fast, slow, strict=True):
        xr.testing.assert_identical(a, b)
        assert list(a.dims) == list(b.dims)
        assert set(a.xindexes) == set(b.xindexes) == {"x", "y", *(["band"] if "rgb" in a else [])}
        for name in a.data_vars:
            assert a[name].encoding == b[name].encoding
            assert a[name].rio.crs == b[name].rio.crs
        assert a.rio.transform() == b.rio.transform() == grid.transform


@pytest.mark.parametrize("masked", [False, True])
def test_selections_read_only_their_window_and_equal_numpy(
    s3fs_fs, tmp_path, bucket, config, masked
):
    """isel/slicing is fused into the read: values equal numpy's, windows shrink the reads."""
    minx, miny, maxx, maxy = GRID.bbox
    mask = shapely.to_wkb(box(minx, miny, (minx + maxx) / 2, maxy)) if masked else None
    plan = make_plan(bucket, mask_wkb=mask)
    arrays = deliver(s3fs_fs, tmp_path, plan)
    ds = build_dataset(plan, reader=config, wait_timeout=60, poll_interval=0.1)  # one big chunk
    full = ds.compute(scheduler="threads")
    if masked:
        np.testing.assert_array_equal(np.isnan(full["ndvi"].values[:, 210:]), True)
    else:
        np.testing.assert_array_equal(full["ndvi"].values, arrays["ndvi"][0])
        np.testing.assert_array_equal(full["rgb"].values, arrays["rgb"])
    selections = [
        {"y": slice(10, 40), "x": slice(300, 333)},
        {"y": 7, "x": slice(None, None, 5)},
        {"y": [3, 1, 250], "x": -1},
        {"y": slice(299, 100, -3)},
        {"band": 1, "y": slice(0, 2)},
        {"band": [2, 0], "x": [0, 419]},
        {"y": slice(50, 50)},
    ]
    for sel in selections:
        for name in ("ndvi", "rgb"):
            var_sel = {k: v for k, v in sel.items() if k in ds[name].dims}
            got = ds[name].isel(var_sel).compute(scheduler="threads")
            np.testing.assert_array_equal(
                got.values, full[name].isel(var_sel).values, err_msg=str(sel)
            )


def test_a_small_window_of_a_big_chunk_reads_only_that_window(
    s3fs_fs, tmp_path, bucket, config, monkeypatch
):

    plan = make_plan(bucket)
    arrays = deliver(s3fs_fs, tmp_path, plan)
    ds = build_dataset(plan, reader=config, wait_timeout=60, poll_interval=0.1)  # one chunk
    windows: list[tuple] = []
    original = WindowSource._read

    def spy(self, rows, cols):
        windows.append((rows, cols))
        return original(self, rows, cols)

    monkeypatch.setattr(WindowSource, "_read", spy)
    small = ds["rgb"].isel(y=slice(100, 164), x=slice(200, 264)).compute(scheduler="threads")
    np.testing.assert_array_equal(small.values, arrays["rgb"][:, 100:164, 200:264])
    assert windows == [((100, 164), (200, 264))]


def test_neighbouring_rows_combine_by_coords(bucket, config, s3fs_fs, tmp_path):
    """#16 finding 10: no conflicting attrs or coords between neighbouring rows."""
    import xarray as xr

    west = PixelGrid(32633, (500_000.0, 4_999_000.0, 501_000.0, 5_000_000.0), 100, 100)
    east = PixelGrid(32633, (501_000.0, 4_999_000.0, 502_000.0, 5_000_000.0), 100, 100)
    south = PixelGrid(32633, (500_000.0, 4_998_000.0, 501_000.0, 4_999_000.0), 100, 100)
    outs = (OutputPlan("ndvi", 1, "float32"),)
    time_range = ("2024-06-01T00:00:00Z", "2024-06-30T23:59:59Z")
    datasets = [
        build_dataset(
            ReadPlan(
                f"t{i}", f"s3://{bucket}/p/t{i}", g, outs, label=f"r{i}", time_range=time_range
            ),
            reader=config,
        )
        for i, g in enumerate((east, south, west))
    ]
    both = xr.combine_by_coords(datasets[::2])
    assert both.sizes == {"y": 100, "x": 200}
    assert both.rio.transform() == west.transform
    assert both.attrs["time_from"] == time_range[0]
    column = xr.combine_by_coords(datasets[1:])  # south and west: one above the other
    assert column.sizes == {"y": 200, "x": 100}
    assert column.rio.transform() == west.transform and column.rio.crs.to_epsg() == 32633
    assert (np.diff(column.y) < 0).all()


def test_fast_dask_arrays_equal_the_public_constructor(
    monkeypatch, bucket, s3fs_fs, tmp_path, config
):
    """``rowgraph.dask_array`` gives the array ``da.Array(...)`` gives: graph, keys, values."""
    import xarray as xr

    from xasync import rowgraph

    plan = make_plan(bucket)
    fast = build_dataset(plan, reader=config, chunks=16)
    monkeypatch.setattr(rowgraph, "FAST_ARRAY", False)
    slow = build_dataset(plan, reader=config, chunks=16)
    for name in fast.data_vars:
        a, b = fast[name].data, slow[name].data
        assert type(a) is type(b)
        assert (a.name, a.chunks, a.shape, a.dtype, type(a._meta)) == (
            b.name,
            b.chunks,
            b.shape,
            b.dtype,
            type(b._meta),
        )
        assert dict(a.dask) == dict(b.dask)
        assert a.__dask_keys__() == b.__dask_keys__()
        assert dask.base.tokenize(a) == dask.base.tokenize(b)
        assert a[..., 3:9, 2:5].chunks == b[..., 3:9, 2:5].chunks
    arrays = deliver(s3fs_fs, tmp_path, plan)
    got_fast = fast.compute(scheduler="sync")
    monkeypatch.setattr(rowgraph, "FAST_ARRAY", True)
    assert float(fast["ndvi"][5:40, 7:90].mean()) == float(arrays["ndvi"][0, 5:40, 7:90].mean())
    xr.testing.assert_identical(got_fast, slow.compute(scheduler="sync"))
