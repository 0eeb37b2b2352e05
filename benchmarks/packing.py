"""Benchmark P6: packing small fields. 1,000 fields of 0.5-5 ha over 3 regions.

Figures, side by side in one run:

- **estimated PU** unpacked (one request per field) and packed (``pack=True``), from
  ``gdf.xasync.estimate`` (the published rules of :mod:`xasync.cost`; no network);
- **charged PU** on the emulator (``--charged``): the same fields bought with ``process``
  unpacked and packed, the charge read from ``status()`` (the emulator writes each request's
  cost into its request copy from its own implementation of the rules), and the pixels of every
  row compared (with ``mask=True``), NaN for NaN.

Goal: at least 20x fewer PU packed, equal pixels.

Usage (from the project root)::

    python -m benchmarks.packing              # estimates only (seconds)
    python -m benchmarks.packing --charged    # + both runs on the emulator (minutes)
"""

from __future__ import annotations

import argparse
import time

import geopandas as gpd
import numpy as np
from shapely.geometry import Polygon

from benchmarks._common import NDVI, TIME

#: Region centres (lon, lat): three farming areas in three UTM zones.
REGIONS = ((14.2, 46.1), (2.3, 48.7), (21.0, 52.2))
#: Half the side of a region, in metres.
REGION_HALF_M = 6_000.0


def fields(n: int = 1000, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` quadrilateral fields of 0.5-5 ha, scattered over :data:`REGIONS` (EPSG:4326)."""
    rng = np.random.default_rng(seed)
    geoms, region = [], []
    for i in range(n):
        k = i % len(REGIONS)
        lon0, lat0 = REGIONS[k]
        area = rng.uniform(5_000.0, 50_000.0)  # m2: 0.5 - 5 ha
        aspect = rng.uniform(0.5, 2.0)
        w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
        cx, cy = rng.uniform(-REGION_HALF_M, REGION_HALF_M, 2)
        skew = rng.uniform(-0.2, 0.2) * w
        corners = [(cx, cy), (cx + w, cy + skew), (cx + w, cy + h + skew), (cx, cy + h)]
        m_per_deg_lat = 111_320.0
        m_per_deg_lon = m_per_deg_lat * np.cos(np.radians(lat0))
        geoms.append(
            Polygon([(lon0 + x / m_per_deg_lon, lat0 + y / m_per_deg_lat) for x, y in corners])
        )
        region.append(k)
    return gpd.GeoDataFrame({"region": region}, geometry=geoms, crs=4326)


def estimated(gdf: gpd.GeoDataFrame) -> list[dict]:
    """Estimated PU unpacked and packed (``gdf.xasync.estimate``)."""
    import xasync  # noqa: F401 - registers the accessor

    rows = []
    for pack in (False, True):
        t0 = time.perf_counter()
        frame = gdf.xasync.estimate(NDVI, time=TIME, resolution=10, crs="utm", pack=pack)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "case": "packed" if pack else "unpacked",
                "fields": len(gdf),
                "requests": int(frame["requests"].nunique()),
                "estimated_pu": round(float(frame.attrs["total_pu"]), 2),
                "seconds": round(seconds, 2),
            }
        )
    return rows


def charged(gdf: gpd.GeoDataFrame, concurrency: int = 16) -> tuple[list[dict], dict]:
    """Both runs on an emulator: charged PU from ``status()``, pixels compared row by row."""
    import xasync  # noqa: F401 - registers the accessor
    from benchmarks._common import emulator_process

    out, values = [], {}
    with emulator_process(concurrency, processing_seconds=0.05) as emu:
        client = emu.client(concurrency)
        for pack in (False, True):
            t0 = time.perf_counter()
            res = gdf.xasync.process(
                NDVI,
                time=TIME,
                resolution=10,
                crs="utm",
                delivery=f"s3://bench/p6-{'packed' if pack else 'unpacked'}",
                storage_options=emu.storage_options,
                client=client,
                mask=True,
                pack=pack,
            )
            res.wait(timeout=1800, progress=False)
            status = res.status()
            values[pack] = [ds["ndvi"].values for ds in res]
            out.append(
                {
                    "case": "packed" if pack else "unpacked",
                    "requests": int(status["requests"].nunique()),
                    "charged_pu": round(float(status["cost_pu"].sum()), 2),
                    "failed": int((status["state"] == "failed").sum()),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
    equal = sum(
        np.array_equal(a, b, equal_nan=True)
        for a, b in zip(values[False], values[True], strict=True)
    )
    return out, {"rows_with_equal_pixels": int(equal), "rows": len(gdf)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packing", description=__doc__)
    parser.add_argument("--fields", type=int, default=1000)
    parser.add_argument("--charged", action="store_true", help="also buy both on the emulator")
    args = parser.parse_args(argv)
    gdf = fields(args.fields)
    est = estimated(gdf)
    ratio = est[0]["estimated_pu"] / est[1]["estimated_pu"]
    print("P6 packing -- estimated (goal: >= 20x fewer PU packed)")
    for row in est:
        print("  ", row)
    print(f"   estimated ratio unpacked/packed: {ratio:.1f}x")
    if args.charged:
        rows, pixels = charged(gdf)
        print("P6 packing -- charged on the emulator")
        for row in rows:
            print("  ", row)
        print(f"   charged ratio: {rows[0]['charged_pu'] / rows[1]['charged_pu']:.1f}x; {pixels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
