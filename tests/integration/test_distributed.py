"""The lazy graph on a real dask.distributed cluster with worker processes.

Workers reach the moto S3 server only through the ``storage_options`` the test passes (the
client process's environment does not travel), and must give the same values as the local
threaded scheduler.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import box

from xasync._contract import ERROR_FILE
from xasync.errors import ProcessingError
from xasync.grid import PixelGrid
from xasync.lazy import build_dataset
from xasync.plan import OutputPlan, ReadPlan
from xasync.reader import ReaderConfig

pytestmark = pytest.mark.distributed

GRID = PixelGrid(32631, (600_000.0, 5_500_000.0, 603_000.0, 5_502_000.0), 300, 200)
OUTPUTS = (OutputPlan("rgb", 3, "uint8"), OutputPlan("ndvi", 1, "float32"))


@pytest.fixture(scope="module")
def cluster_client(dask_cluster):
    import distributed

    with distributed.Client(dask_cluster) as client:
        yield client


def plan_for(bucket: str, label: int, *, masked: bool = False) -> ReadPlan:
    token = uuid.uuid4().hex
    minx, miny, maxx, maxy = GRID.bbox
    mask = shapely.to_wkb(box(minx, miny, (minx + maxx) / 2, maxy)) if masked else None
    return ReadPlan(
        token=token,
        row_url=f"s3://{bucket}/d/{token[:16]}",
        grid=GRID,
        outputs=OUTPUTS,
        label=label,
        mask_wkb=mask,
    )


def deliver(fs, tmp_path, plan: ReadPlan, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for out in plan.outputs:
        shape = (out.bands, GRID.height, GRID.width)
        data = (
            rng.random(shape).astype(out.dtype)
            if out.dtype.startswith("float")
            else rng.integers(1, 255, size=shape).astype(out.dtype)
        )
        local = tmp_path / f"{uuid.uuid4().hex}.tif"
        with rasterio.open(
            local,
            "w",
            driver="GTiff",
            width=GRID.width,
            height=GRID.height,
            count=out.bands,
            dtype=out.dtype,
            crs=f"EPSG:{GRID.epsg}",
            transform=GRID.transform,
            tiled=True,
            blockxsize=64,
            blockysize=64,
            compress="deflate",
        ) as dst:
            dst.write(data)
        fs.put_file(str(local), f"{plan.row_url}/REQ-{seed}/{out.identifier}.tif")


def test_cluster_equals_local_scheduler(cluster_client, s3fs_fs, tmp_path, bucket, s3_server):
    # The workers' own environment cannot reach moto: only the options below can.
    env = cluster_client.run(
        lambda: {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")}
    )
    assert all(v is None for w in env.values() for v in w.values()), env
    reader = ReaderConfig(storage_options=s3_server.storage_options)
    plans = [plan_for(bucket, i, masked=(i == 1)) for i in range(3)]
    for i, plan in enumerate(plans):
        deliver(s3fs_fs, tmp_path, plan, seed=i)
    datasets = [
        build_dataset(p, reader=reader, chunks=(64, 128), wait_timeout=60, poll_interval=0.2)
        for p in plans
    ]
    futures = cluster_client.compute(datasets)
    on_cluster = cluster_client.gather(futures)
    for ds, remote in zip(datasets, on_cluster, strict=True):
        local = ds.compute(scheduler="threads")
        for name in ("rgb", "ndvi"):
            np.testing.assert_array_equal(remote[name].values, local[name].values)
            assert remote[name].dtype == local[name].dtype
    assert np.isnan(on_cluster[1]["ndvi"].values[:, 150:]).all()
    assert not np.isnan(on_cluster[0]["ndvi"].values).any()


def test_failed_row_raises_on_cluster_and_others_compute(
    cluster_client, s3fs_fs, tmp_path, bucket, s3_server
):
    reader = ReaderConfig(storage_options=s3_server.storage_options)
    bad, good = plan_for(bucket, 10), plan_for(bucket, 11)
    s3fs_fs.pipe_file(f"{bad.row_url}/REQ-X/{ERROR_FILE}", b'{"message": "out of quota"}')
    deliver(s3fs_fs, tmp_path, good, seed=5)
    ds_bad = build_dataset(bad, reader=reader, wait_timeout=30, poll_interval=0.2)
    ds_good = build_dataset(good, reader=reader, wait_timeout=30, poll_interval=0.2)
    f_bad, f_good = cluster_client.compute([ds_bad, ds_good])
    with pytest.raises(ProcessingError, match="out of quota") as info:
        f_bad.result(timeout=60)
    assert (info.value.message, info.value.request_id, info.value.row) == (
        "out of quota",
        "REQ-X",
        10,
    )
    got = f_good.result(timeout=60)
    np.testing.assert_array_equal(got["rgb"].values, ds_good["rgb"].compute().values)
