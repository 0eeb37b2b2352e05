"""Benchmark 5: peak worker memory reducing many deliveries to per-row means on a cluster.

200 deliveries of 2000 x 2000 float32 (16 MB each in memory, 3.2 GB in all) are reduced to one
mean per row on ``LocalCluster(n_workers=2, processes=True)``; the workers read them from S3
through the storage options only. The files are written with rasterio straight into the
emulator's S3 in the delivery layout of 200 rows (one file, uploaded under every row): the
emulator's JavaScript engine would need about 20 minutes to render 8e8 pixels, which says
nothing about the workers' memory. Peak RSS is sampled on every worker every 0.1 s.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

import numpy as np

from benchmarks._common import emulator_process

SIDE = 2000


def _write(path: str) -> None:
    import rasterio
    from rasterio.transform import from_origin

    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype("float32")
    data = (0.5 + 0.3 * np.sin(yy / 50) * np.cos(xx / 70)).astype("float32")
    profile = {
        "driver": "GTiff",
        "width": SIDE,
        "height": SIDE,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 5_020_000, 10, 10),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _rss_sampler(client, stop: threading.Event, peaks: dict) -> None:
    import psutil

    def rss() -> int:

        return psutil.Process().memory_info().rss

    while not stop.is_set():
        try:
            for worker, value in client.run(rss).items():
                peaks[worker] = max(peaks.get(worker, 0), value)
        except Exception:  # a worker restarting: keep sampling
            pass
        stop.wait(0.1)


def run(n: int = 200) -> list[dict]:
    import s3fs
    from distributed import Client, LocalCluster

    from xasync.grid import PixelGrid
    from xasync.lazy import build_dataset
    from xasync.plan import OutputPlan, ReadPlan
    from xasync.reader import ReaderConfig

    with tempfile.TemporaryDirectory() as tmp, emulator_process(1, 0.1) as emu:
        path = os.path.join(tmp, "default.tif")
        _write(path)
        fs = s3fs.S3FileSystem(**emu.storage_options)
        t = time.perf_counter()
        for i in range(n):
            fs.put_file(path, f"s3://bench/cluster/row{i}/req-{i}/default.tif")
        upload_s = time.perf_counter() - t
        grid = PixelGrid(32633, (500_000.0, 5_000_000.0, 520_000.0, 5_020_000.0), SIDE, SIDE)
        config = ReaderConfig(storage_options=emu.storage_options)
        datasets = [
            build_dataset(
                ReadPlan(
                    f"row{i}",
                    f"s3://bench/cluster/row{i}",
                    grid,
                    (OutputPlan("default", 1, "float32"),),
                    label=i,
                ),
                reader=config,
            )
            for i in range(n)
        ]
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=2,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            peaks: dict = {}
            baseline = dict(client.run(lambda: __import__("psutil").Process().memory_info().rss))
            stop = threading.Event()
            sampler = threading.Thread(target=_rss_sampler, args=(client, stop, peaks))
            sampler.start()
            t = time.perf_counter()
            means = client.compute([ds["default"].mean() for ds in datasets], sync=True)
            seconds = time.perf_counter() - t
            stop.set()
            sampler.join()
        assert len(means) == n
        rows = [
            {
                "worker": worker.rsplit(":", 1)[-1],
                "peak_rss_mib": round(peak / 2**20),
                "start_rss_mib": round(baseline.get(worker, 0) / 2**20),
            }
            for worker, peak in sorted(peaks.items())
        ]
        rows.append(
            {
                "compute_s": round(seconds, 1),
                "upload_s": round(upload_s, 1),
                "rows": n,
                "mean_of_means": round(float(np.mean(means)), 4),
            }
        )
    return rows
