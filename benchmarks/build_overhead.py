"""Benchmark 4 and P4: rows -> lazy Datasets, at 10 000 and at 100 000 rows.

Figures:

- **build path, no network at all** (10 000 rows, in this process): validation + one
  RequestSpec per row (``build_specs``), its ReadPlan and its lazy Dataset (``build_dataset``),
  i.e. everything ``process`` does per row;
- **P4: ``process()`` until it returns**, unpacked and with ``pack=True`` (by default 100 000
  rows; fields in four clusters over three UTM zones, so that packing groups them), each case in
  a FRESH Python process so that the cases do not share a peak: the seconds until the call
  returns, then the rows per second assembling every Dataset (``list(results)``), and the peak
  RSS of that process (``ru_maxrss``: imports and warm-up included) when the call returned and
  after every Dataset was assembled; for a big call, the seconds and the CPU (every thread of
  the process) from the return until its background thread has written the manifest and
  handed the rows over (the CPU a notebook shares with its first Dataset builds). The
  emulator runs in its own process with a concurrency limit of 1 and a long processing time,
  so the submission in the background stays at one request (what the call costs a notebook,
  network included: one token, one manifest PUT, one S3 listing, at most one create); then the queued rows are cancelled, nothing else is bought.

Run alone: ``python -m benchmarks.build_overhead [--rows 100000] [--only unpacked|packed]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import geopandas as gpd
import numpy as np

from benchmarks._common import NDVI, TIME, emulator_process, fields

#: Cluster centres (lon, lat): four farming areas in three UTM zones (33, 32, 34).
CLUSTERS = ((14.0, 46.0), (15.2, 46.6), (8.6, 47.2), (20.4, 45.3))
#: Lattice step of the fields inside a cluster, in degrees (about 50 x 70 m).
STEP = 0.0007
#: Side of one field in degrees (about 30 x 45 m: 3 x 5 px at 10 m).
SIDE = 0.0004


def clustered_fields(n: int) -> gpd.GeoDataFrame:
    """``n`` small square fields on a lattice in each of :data:`CLUSTERS` (EPSG:4326)."""
    import shapely

    k = np.arange(n)
    cluster = k % len(CLUSTERS)
    j = k // len(CLUSTERS)
    cols = int(np.ceil(np.sqrt(n / len(CLUSTERS))))
    centres = np.asarray(CLUSTERS)[cluster]
    x0 = centres[:, 0] + STEP * (j % cols)
    y0 = centres[:, 1] + STEP * (j // cols)
    geoms = shapely.box(x0, y0, x0 + SIDE, y0 + SIDE)
    return gpd.GeoDataFrame({"cluster": cluster}, geometry=geoms, crs=4326)


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build_path(n: int) -> dict:
    """Everything ``process`` does per row, without network, in this process."""
    from xasync.lazy import build_dataset
    from xasync.reader import ReaderConfig
    from xasync.request import build_specs

    gdf = fields(n)
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
    return {
        "case": f"build path, {n} rows, no network",
        "rows_per_s": round(n / (t3 - t0)),
        "seconds": round(t3 - t0, 3),
        "specs_s": round(t1 - t0, 3),
        "plans_s": round(t2 - t1, 3),
        "datasets_s": round(t3 - t2, 3),
    }


class _CollectorClock:
    """Seconds the garbage collector ran (every generation) while installed."""

    def __init__(self) -> None:
        self.seconds, self._start = 0.0, 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


def _child(
    endpoints: dict,
    n: int,
    pack: bool,
    profile: str | None,
    assemble: bool = True,
    running: bool = False,
) -> dict:
    """One case, in a fresh process: ``process()`` on ``n`` rows, then every Dataset.

    ``running``: the rows are cancelled after the assembly instead of right after the call, so
    the submission goes on (one request held by the emulator, the others queued) meanwhile.
    """
    import gc

    from benchmarks._common import EmulatorProcess

    emu = EmulatorProcess(**endpoints)
    client = emu.client(concurrency=1)
    client.check_credentials()
    gdf = clustered_fields(n)
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "storage_options": emu.storage_options}
    warm = clustered_fields(12)  # imports, the S3 connection pool and the submitter thread
    warm.xasync.process(NDVI, delivery="s3://bench/warm", client=client, pack=pack, **kw).cancel()
    before, rss_before = emu.stats(), _rss_mib()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t, cpu = time.perf_counter(), time.thread_time()
    results = gdf.xasync.process(
        NDVI, delivery=f"s3://bench/p4-{pack}", client=client, pack=pack, **kw
    )
    returned, cpu = time.perf_counter() - t, time.thread_time() - cpu
    if prof is not None:  # the call alone, then the assembly alone
        prof.disable()
        prof.dump_stats(profile)
        prof = cProfile.Profile()
        prof.enable()
    after_cpu = time.process_time()  # every thread: the background hand-over competes
    if not running:
        results.cancel()
    rss_returned = _rss_mib()
    t = time.perf_counter()
    for thread in threading.enumerate():  # a big call's manifest and hand-over (background)
        if thread.name == "xasync-call":
            thread.join()
    handed_over, rss_handed_over = time.perf_counter() - t, _rss_mib()
    after_cpu = time.process_time() - after_cpu
    collector = _CollectorClock()
    gc.callbacks.append(collector)
    t, cpu_all, cpu_me = time.perf_counter(), time.process_time(), time.thread_time()
    built = list(results) if assemble else [None] * n  # every lazy Dataset assembled
    assembled = time.perf_counter() - t if assemble else float("nan")
    cpu_me, cpu_all = time.thread_time() - cpu_me, time.process_time() - cpu_all
    gc.callbacks.remove(collector)
    if running:
        results.cancel()
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile + ".assembly")
    after = emu.stats()
    assert len(built) == n
    requests = len({u for url in results.status()["requests"] for u in url.split()})
    client.close()
    return {
        "case": f"process() {'pack=True' if pack else 'unpacked'}, {n} rows",
        "returned_s": round(returned, 3),
        "rows_per_s": round(n / returned),
        "call_thread_cpu_s": round(cpu, 3),
        "assembled_rows_per_s": round(n / assembled) if assemble else None,
        "assembled_s": round(assembled, 3),
        "submission": "running during the assembly" if running else "cancelled at the call",
        "assembly_thread_cpu_s": round(cpu_me, 3),
        "other_threads_cpu_s_during_assembly": round(cpu_all - cpu_me, 3),
        "collector_s_during_assembly": round(collector.seconds, 3),
        "handed_over_s_after_return": round(handed_over, 3),
        "process_cpu_s_until_handed_over": round(after_cpu, 3),
        "peak_rss_mib_handed_over": round(rss_handed_over),
        "requests": requests,
        "peak_rss_mib_returned": round(rss_returned),
        "peak_rss_mib_assembled": round(_rss_mib()),
        "rss_mib_before_call": round(rss_before),
        "s3_requests": after["s3"]["requests"] - before["s3"]["requests"],
        "create_calls": after["create_calls"] - before["create_calls"],
    }


def p4_cases(
    n: int,
    cases: tuple[str, ...] = ("unpacked", "packed"),
    profile: str = "",
    assemble: bool = True,
    running: bool = False,
) -> list:
    """Each case in a fresh Python process, against one emulator process."""
    rows = []
    with emulator_process(1, 600.0) as emu:
        for case in cases:
            spec = {"endpoints": emu.__dict__, "n": n, "pack": case == "packed"}
            spec["profile"] = f"{profile}.{case}" if profile else None
            spec["assemble"] = assemble
            spec["running"] = running
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.build_overhead", "--child", json.dumps(spec)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
                timeout=1800,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def run(n: int = 10_000, big: int | None = None) -> list[dict]:
    """The build path at ``n`` rows and the P4 cases at ``big`` rows (default ``10 * n``)."""
    return [build_path(n), *p4_cases(big or 10 * n)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.build_overhead")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=["unpacked", "packed"], default=None)
    parser.add_argument(
        "--profile",
        default="",
        help="cProfile each case's call to <PATH>.<case> (its assembly: .assembly)",
    )
    parser.add_argument(
        "--no-assembly", action="store_true", help="time the call only (no Dataset built)"
    )
    parser.add_argument(
        "--running",
        action="store_true",
        help="cancel after the assembly: the submission runs (held by the emulator) meanwhile",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(_child(**spec)))
        return
    cases = (args.only,) if args.only else ("unpacked", "packed")
    for row in p4_cases(args.rows, cases, args.profile, not args.no_assembly, args.running):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
