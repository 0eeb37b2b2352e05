"""Benchmark 3: bytes read from S3 for a small window of a big delivery (and across seams).

A 10000 x 10000 uint16 delivery (512 x 512 tiles, DEFLATE, like the emulator's tiled layout) is
written with rasterio straight into the emulator's S3 in the exact delivery layout of one row:
rendering 1e8 pixels through the emulator's JavaScript engine would take about ten minutes and
measure nothing about reading. The row is then opened exactly as ``process`` does (a lazy
Dataset from its ReadPlan) and a 512 x 512 window is computed. The bytes the S3 server sends are
compared with the compressed size of the tiles that cover the window (from the file's
TileByteCounts) and with a full download of the file.

:func:`run_seams` (issue 17): a row bought as 2 x 2 requests (``max_request_px``), windows
across the seams between the requests' files and at their corner, beside the same row bought
whole. ``python -m benchmarks.read_efficiency [--seams]``.
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


def run(
    block_sizes: tuple[int, ...] = (32 * 1024, 16 * 1024, 64 * 1024), seams: bool = True
) -> list[dict]:
    """The one-file cases, then (``seams``) those of :func:`run_seams`."""
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
    return rows + (run_seams() if seams else [])


# --------------------------------------------------------------------------- across tile seams
#: A row of SEAM_ROW x SEAM_ROW px bought as 2 x 2 requests of SEAM_MAX px (max_request_px):
#: seams at 2500 px, not on the 512 px GeoTIFF tiles of each file (its last tiles are partial).
SEAM_ROW, SEAM_MAX, RES = 5000, 2500, 10.0
SEAM_ORIGIN = (500_000.0, 5_100_000.0)
UINT16_SCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04"], output: {id: "default", bands: 1, sampleType: "UINT16"}};
}
function evaluatePixel(s) { return [s.B04 * 10000]; }
"""
SEAM_TIME = ("2024-06-01", "2024-06-30")


def _row_values() -> np.ndarray:
    """The row's pixels, a function of position only: every request's file is a window of it."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:SEAM_ROW, 0:SEAM_ROW]
    smooth = 3000 + 1000 * np.sin(yy / 700.0) * np.cos(xx / 900.0)
    return np.clip(smooth + rng.normal(0, 150, size=smooth.shape), 0, 65535).astype("uint16")


def _seam_frame():
    import geopandas as gpd
    from shapely.geometry import box

    x0, y1 = SEAM_ORIGIN
    geom = box(x0, y1 - SEAM_ROW * RES, x0 + SEAM_ROW * RES, y1)
    return gpd.GeoDataFrame({"name": ["county"]}, geometry=[geom], crs=32633)


def _write_request(fs, tmp: str, url: str, grid, values: np.ndarray) -> str:
    """One request's delivery, ``<url>/<id>/default.tif``, on its own grid; the local path."""
    import rasterio

    path = os.path.join(tmp, f"{url.rsplit('/', 1)[-1]}.tif")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint16",
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
    }
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    fs.put_file(path, f"{url}/bench-{url.rsplit('/', 1)[-1][:8]}/default.tif")
    return path


def _tile_bytes_in(path: str, y0: int, x0: int, h: int, w: int) -> int:
    """Compressed bytes of the GeoTIFF tiles of ``path`` meeting the window (file pixels)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        counts = page.tags["TileByteCounts"].value
        across = math.ceil(page.imagewidth / page.tilewidth)
        tw, th = page.tilewidth, page.tilelength
    return sum(
        counts[ty * across + tx]
        for ty in range(y0 // th, (y0 + h - 1) // th + 1)
        for tx in range(x0 // tw, (x0 + w - 1) // tw + 1)
    )


def _covering(files: list[tuple[str, tuple, tuple]], y0: int, x0: int) -> tuple[int, int]:
    """Bytes of the tiles covering a TILE x TILE window of the row in all its files, and how
    many files it meets. ``files``: ``(path, window in the file, target in the row)``."""
    total = met = 0
    for path, (sr, sc, _, _), (r, c, h, w) in files:
        top, bottom = max(y0, r), min(y0 + TILE, r + h)
        left, right = max(x0, c), min(x0 + TILE, c + w)
        if bottom <= top or right <= left:
            continue
        met += 1
        total += _tile_bytes_in(path, top - r + sr, left - c + sc, bottom - top, right - left)
    return total, met


#: Windows (y0, x0) of the row: across the vertical seam, the horizontal one (off the 512 px
#: tiles), and at the corner of the four requests; then the same places with ``chunks=512``.
SEAM_WINDOWS = (
    ("across the vertical seam", (512, SEAM_MAX - TILE // 2)),
    ("across the horizontal seam, off the GeoTIFF tiles", (SEAM_MAX - 200, 1000)),
    ("at the corner of 4 requests", (SEAM_MAX - TILE // 2, SEAM_MAX - TILE // 2)),
)


def _prepare_seams(emu, fs, tmp: str, root: str) -> dict:
    """Write the row's deliveries (tiled and whole) where ``process`` will look for them."""
    from xasync.planned import plan_call
    from xasync.request import build_specs

    values, gdf = _row_values(), _seam_frame()
    kw = {"time": SEAM_TIME, "resolution": RES, "storage_options": emu.storage_options}
    layouts = {}
    for name, max_px in (("tiled", SEAM_MAX), ("whole", 10_000)):
        specs = build_specs(gdf, UINT16_SCRIPT, delivery=f"{root}/{name}", tiled=True, **kw)
        planned = plan_call(specs, max_request_px=max_px)
        if planned is None:  # one request: the row's own
            spec = specs[0]
            whole = (0, 0, spec.grid.height, spec.grid.width)
            files = [(_write_request(fs, tmp, spec.row_url, spec.grid, values), whole, whole)]
        else:
            files = []
            for s in planned.sources[0]:
                r, c, h, w = s.target
                path = _write_request(fs, tmp, s.row_url, s.grid, values[r : r + h, c : c + w])
                files.append((path, s.window, s.target))
        layouts[name] = (max_px, files)
    return {"values": values, "gdf": gdf, "layouts": layouts}


def _open_row(emu, root: str, name: str, max_px: int, chunks, gdf):
    """The row's lazy Dataset exactly as ``process`` builds it (its deliveries are found in S3)."""
    res = gdf.xasync.process(
        UINT16_SCRIPT,
        time=SEAM_TIME,
        resolution=RES,
        delivery=f"{root}/{name}",
        storage_options=emu.storage_options,
        client=emu.client(None),
        max_request_px=max_px,
        chunks=chunks,
    )
    res.wait(timeout=120, progress=False)
    status = res.status()
    if list(status["state"]) != ["done"]:
        raise RuntimeError(f"the {name} row was not found delivered: {status.to_dict('records')}")
    return res[0]


def run_seams() -> list[dict]:
    """512 x 512 windows across the seams of a row bought as 2 x 2 requests, and the same
    windows of the row bought whole: bytes read at the S3 server / bytes of covering tiles."""
    import s3fs

    from xasync import reader

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, emulator_process(1, 0.1) as emu:
        fs, root = s3fs.S3FileSystem(**emu.storage_options), "s3://bench/seams"
        prep = _prepare_seams(emu, fs, tmp, root)
        for chunks in (None, TILE):
            for name, (max_px, files) in prep["layouts"].items():
                ds = _open_row(emu, root, name, max_px, chunks, prep["gdf"])
                for label, (y0, x0) in SEAM_WINDOWS:
                    reader.clear_cache()  # every file opened cold (header bytes counted)
                    before = emu.stats()["s3"]
                    t = time.perf_counter()
                    window = ds["default"].isel(y=slice(y0, y0 + TILE), x=slice(x0, x0 + TILE))
                    values = window.compute(scheduler="sync").values
                    seconds = time.perf_counter() - t
                    after = emu.stats()["s3"]
                    expected = prep["values"][y0 : y0 + TILE, x0 : x0 + TILE]
                    if not np.array_equal(values, expected):
                        raise RuntimeError(f"{name} row, window {label}: wrong values")
                    sent = after["bytes_sent"] - before["bytes_sent"]
                    covering, met = _covering(files, y0, x0)
                    rows.append(
                        {
                            "case": f"{name} row ({len(files)} requests), 512x512 window "
                            f"{label} at ({y0},{x0}), chunks={chunks or 'default'}",
                            "files": met,
                            "bytes_read": sent,
                            "covering_tile_bytes": covering,
                            "ratio": round(sent / covering, 3),
                            "requests": after["requests"] - before["requests"],
                            "seconds": round(seconds, 3),
                        }
                    )
        if emu.stats()["creates"]:
            raise RuntimeError("process bought requests: the deliveries were not where planned")
    return rows


if __name__ == "__main__":  # python -m benchmarks.read_efficiency [--seams]
    import sys

    from benchmarks.run import _table

    print(_table(run_seams() if "--seams" in sys.argv else run()))
