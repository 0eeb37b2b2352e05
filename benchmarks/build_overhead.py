"""Benchmark 4: rows -> lazy Datasets per second, for 10 000 polygons.

Two figures:

- **build path, no network at all**: validation + one RequestSpec per row
  (``build_specs``), its ReadPlan and its lazy Dataset (``build_dataset``), i.e. everything
  ``process`` does per row;
- **``process()`` until it returns** (Datasets are assembled on first access), against an emulator process whose concurrency limit is 1
  and processing time long, so the submission in the background stays at one request: what the
  call costs a notebook, network included (one token, one manifest PUT, one S3 listing, at most
  one create) -- then the queued rows are cancelled, nothing else is bought.
"""

from __future__ import annotations

import time

from benchmarks._common import NDVI, TIME, emulator_process, fields


def run(n: int = 10_000) -> list[dict]:
    from xasync.lazy import build_dataset
    from xasync.reader import ReaderConfig
    from xasync.request import build_specs

    gdf = fields(n)
    rows = []
    # warm-up: imports, the evalscript engine, pyproj caches
    build_specs(
        gdf.iloc[:10], NDVI, time=TIME, resolution=10, crs="utm", delivery="s3://bench/warmup"
    )

    t0 = time.perf_counter()
    specs = build_specs(gdf, NDVI, time=TIME, resolution=10, crs="utm", delivery="s3://bench/b")
    t1 = time.perf_counter()
    plans = [spec.read_plan() for spec in specs]
    t2 = time.perf_counter()
    config = ReaderConfig()
    datasets = [build_dataset(plan, reader=config) for plan in plans]
    t3 = time.perf_counter()
    assert len(datasets) == n
    total = t3 - t0
    rows.append(
        {
            "case": f"build path, {n} rows, no network",
            "rows_per_s": round(n / total),
            "seconds": round(total, 3),
            "specs_s": round(t1 - t0, 3),
            "plans_s": round(t2 - t1, 3),
            "datasets_s": round(t3 - t2, 3),
        }
    )

    with emulator_process(1, 600.0) as emu:
        client = emu.client(concurrency=1)
        client.check_credentials()
        small = fields(10, lat0=48.0)
        small.xasync.process(  # warm the S3 connection pool and the submitter thread
            NDVI,
            time=TIME,
            resolution=10,
            crs="utm",
            delivery="s3://bench/warm",
            storage_options=emu.storage_options,
            client=client,
        ).cancel()
        before = emu.stats()
        t = time.perf_counter()
        results = gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=10,
            crs="utm",
            delivery="s3://bench/process",
            storage_options=emu.storage_options,
            client=client,
        )
        returned = time.perf_counter() - t
        results.cancel()
        after = emu.stats()
        t = time.perf_counter()
        built = list(results)  # every lazy Dataset assembled
        materialized = time.perf_counter() - t
        assert len(built) == n
        rows.append(
            {
                "case": f"process() until it returns, {n} rows (emulator, network)",
                "rows_per_s": round(n / returned),
                "seconds": round(returned, 3),
                "s3_requests": after["s3"]["requests"] - before["s3"]["requests"],
                "create_calls": after["create_calls"] - before["create_calls"],
            }
        )
        rows.append(
            {
                "case": f"process() + all {n} Datasets assembled",
                "rows_per_s": round(n / (returned + materialized)),
                "seconds": round(returned + materialized, 3),
            }
        )
        client.close()
    return rows
