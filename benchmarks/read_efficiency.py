"""Benchmark 3: bytes read from S3 for a small window of a big delivery.

A 10000 x 10000 uint16 delivery (512 x 512 tiles, DEFLATE, like the emulator's tiled layout) is
written with rasterio straight into the emulator's S3 in the exact delivery layout of one row:
rendering 1e8 pixels through the emulator's JavaScript engine would take about ten minutes and
measure nothing about reading. The row is then opened exactly as ``process`` does (a lazy
Dataset from its ReadPlan) and a 512 x 512 window is computed. The bytes the S3 server sends are
compared with the compressed size of the tiles that cover the window (from the file's
TileByteCounts) and with a full download of the file.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np

from benchmarks._common import emulator_process

SIZE = 10_000
TILE = 512


def _write_file(path: str) -> None:
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": from_origin(500_000, 5_100_000, 10, 10),
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
    }
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(path, "w", **profile) as dst:
        step = 2000
        yy, xx = np.mgrid[0:step, 0:SIZE]
        for y0 in range(0, SIZE, step):
            smooth = 3000 + 1000 * np.sin((yy + y0) / 700.0) * np.cos(xx / 900.0)
            noise = rng.normal(0, 150, size=smooth.shape)
            block = np.clip(smooth + noise, 0, 65535).astype("uint16")
            dst.write(block, 1, window=((y0, y0 + step), (0, SIZE)))


def _covering_tile_bytes(path: str, y0: int, x0: int, h: int, w: int) -> int:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        counts = tif.pages[0].tags["TileByteCounts"].value
    across = math.ceil(SIZE / TILE)
    total = 0
    for ty in range(y0 // TILE, (y0 + h - 1) // TILE + 1):
        for tx in range(x0 // TILE, (x0 + w - 1) // TILE + 1):
            total += counts[ty * across + tx]
    return total


def _windows(case: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """A tile-aligned window and one across 4 tiles, on tiles no other case reads.

    GDAL keeps decoded tiles in a process-wide block cache: reusing a tile would hide its bytes.
    """
    aligned = TILE * (1 + 2 * case)
    across = 10 * TILE + TILE // 2 + 2 * TILE * case
    return (aligned, aligned), (across, across)


def run(block_sizes: tuple[int, ...] = (32 * 1024, 16 * 1024, 64 * 1024)) -> list[dict]:
    import s3fs

    from xasync import reader
    from xasync.grid import PixelGrid
    from xasync.lazy import build_dataset
    from xasync.ledger import LEDGER, Entry, Stage
    from xasync.plan import OutputPlan, ReadPlan

    rows = []
    with tempfile.TemporaryDirectory() as tmp, emulator_process(1, 0.1) as emu:
        path = os.path.join(tmp, "default.tif")
        t0 = time.perf_counter()
        _write_file(path)
        write_s = time.perf_counter() - t0
        size = os.path.getsize(path)
        fs = s3fs.S3FileSystem(**emu.storage_options)
        row_url = "s3://bench/read/row0"
        url = f"{row_url}/req-0/default.tif"
        fs.put_file(path, url)
        grid = PixelGrid(32633, (500_000.0, 5_000_000.0, 600_000.0, 5_100_000.0), SIZE, SIZE)
        plan = ReadPlan("bench-read", row_url, grid, (OutputPlan("default", 1, "uint16"),))
        # delivered, as the submitter of this process would record it: no listing in the figure
        LEDGER.record(row_url, Entry(row_url, Stage.DONE, "req-0", outputs={"default": url}))
        cases = [(TILE, bs) for bs in block_sizes] + [(None, block_sizes[0])]
        for case, (chunks, block_size) in enumerate(cases):
            config = reader.ReaderConfig(storage_options=emu.storage_options, block_size=block_size)
            for y0, x0 in _windows(case):
                reader.clear_cache()
                ds = build_dataset(plan, reader=config, chunks=chunks)
                before = emu.stats()["s3"]
                t = time.perf_counter()
                window = ds["default"].isel(y=slice(y0, y0 + TILE), x=slice(x0, x0 + TILE))
                values = window.compute(scheduler="threads")
                seconds = time.perf_counter() - t
                after = emu.stats()["s3"]
                sent = after["bytes_sent"] - before["bytes_sent"]
                covering = _covering_tile_bytes(path, y0, x0, TILE, TILE)
                rows.append(
                    {
                        "case": f"512x512 window at ({y0},{x0}), chunks={chunks or 'default'}, "
                        f"block {block_size // 1024} KiB",
                        "bytes_read": sent,
                        "covering_tile_bytes": covering,
                        "ratio": round(sent / covering, 3),
                        "requests": after["requests"] - before["requests"],
                        "seconds": round(seconds, 3),
                        "shape": tuple(values.shape),
                    }
                )
        before = emu.stats()["s3"]
        t = time.perf_counter()
        fs.invalidate_cache()
        data = fs.cat_file(url)
        rows.append(
            {
                "case": "full download (fs.cat)",
                "bytes_read": emu.stats()["s3"]["bytes_sent"] - before["bytes_sent"],
                "covering_tile_bytes": _covering_tile_bytes(path, 4096, 4096, TILE, TILE),
                "ratio": None,
                "requests": None,
                "seconds": round(time.perf_counter() - t, 3),
                "shape": (len(data),),
            }
        )
        rows[-1]["ratio"] = round(rows[-1]["bytes_read"] / rows[-1]["covering_tile_bytes"], 1)
        rows.append({"case": f"file: {size / 1e6:.1f} MB, written in {write_s:.1f} s"})
    return rows
