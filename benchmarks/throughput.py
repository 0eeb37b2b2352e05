"""Benchmarks 1 and 2: throughput against the physical limit, and API calls per request.

**P1** (:func:`run_p1`): xasync alone, with 20 % jitter on the processing time, against the
work-conserving bound ``max(sum(d_i)/K, max(d_i))`` over the service-side durations ``d_i``
(accept to finish, read from the emulator's ``stats["requests"]``; when an emulator does not
expose them, the nominal ``ceil(N/K) * T * (1 + jitter/2)`` is used and the row says so).

With a concurrency limit K and a processing time T, N requests cannot finish faster than
``ceil(N/K)*T``. Three clients run side by side against one emulator process (its own GIL, as
a remote service has):

- **xasync**: ``gdf.xasync.process(...)`` then ``results.wait()``;
- **thread pool**: every row submitted at once from 32 threads, 429s retried after a fixed
  1 s sleep, status polled every second (plain httpx);
- **sequential**: create, poll status every second until 404, next row (plain httpx).

API calls per request = (create calls + status calls + S3 LIST requests) / N, counted by the
emulator (its S3 server counts requests by kind).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks._common import NDVI, TIME, EmulatorProcess, emulator_process, fields

API = "/api/v1/async/process"


def _delta(before: dict, after: dict) -> dict:
    return {
        "creates": after["creates"] - before["creates"],
        "create_calls": after["create_calls"] - before["create_calls"],
        "status_calls": after["status_calls"] - before["status_calls"],
        "rate_limited": after["rate_limited"] - before["rate_limited"],
        "lists": after["s3"]["list"] - before["s3"]["list"],
    }


def _bodies(emu: EmulatorProcess, n: int, prefix: str) -> list[dict]:
    from xasync.request import build_specs

    specs = build_specs(
        fields(n, lat0=47.0),
        NDVI,
        data="sentinel-2-l2a",
        time=TIME,
        resolution=10,
        crs="utm",
        delivery=f"s3://bench/{prefix}",
    )
    extras = {"accessKey": emu.s3_key, "secretAccessKey": emu.s3_secret}
    return [spec.body(extras) for spec in specs]


def _token(emu: EmulatorProcess) -> str:
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def _one_naive(http: httpx.Client, url: str, body: dict, *, sleep_429: float) -> None:
    while True:
        r = http.post(url, json=body)
        if r.status_code == 429:
            time.sleep(sleep_429)
            continue
        r.raise_for_status()
        rid = r.json()["id"]
        break
    while True:
        time.sleep(1.0)
        if http.get(f"{url}/{rid}").status_code == 404:
            return


def run_naive(emu: EmulatorProcess, n: int, *, threads: int, prefix: str) -> dict:
    """The baselines: ``threads=1`` is the sequential loop."""
    bodies = _bodies(emu, n, prefix)
    headers = {"Authorization": f"Bearer {_token(emu)}"}
    url = f"{emu.base_url}{API}"
    before = emu.stats()
    start = time.perf_counter()
    with httpx.Client(headers=headers, timeout=60) as http:
        if threads == 1:
            for body in bodies:
                _one_naive(http, url, body, sleep_429=1.0)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda b: _one_naive(http, url, b, sleep_429=1.0), bodies))
    wall = time.perf_counter() - start
    return {"wall": wall, **_delta(before, emu.stats())}


def run_xasync(emu: EmulatorProcess, n: int, *, k: int, prefix: str) -> dict:
    client = emu.client(concurrency=k)
    gdf = fields(n)
    before = emu.stats()
    start = time.perf_counter()
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery=f"s3://bench/{prefix}",
        storage_options=emu.storage_options,
        client=client,
    )
    returned = time.perf_counter() - start
    results.wait(progress=False)
    wall = time.perf_counter() - start
    states = results.status()["state"].value_counts().to_dict()
    client.close()
    return {"wall": wall, "returned": returned, "states": states, **_delta(before, emu.stats())}


def service_bound(stats: dict, ids: set[str] | None, k: int) -> tuple[float | None, int]:
    """``max(sum(d_i)/K, max(d_i))`` over the requests of ``ids`` (None: all), and their count."""
    timed = [
        r
        for r in stats.get("requests") or []
        if r.get("finished") is not None and (ids is None or r["id"] in ids)
    ]
    if not timed:
        return None, 0
    durations = [r["finished"] - r["accepted"] for r in timed]
    return max(sum(durations) / k, max(durations)), len(durations)


def run_p1(settings=((500, 10, 0.5), (200, 20, 5.0)), jitter: float = 0.2) -> list[dict]:
    """P1: wall time / work-conserving bound and calls per request, one emulator per setting."""
    rows = []
    for n, k, t in settings:
        with emulator_process(k, t, jitter=jitter * t) as emu:
            run_xasync(emu, k, k=k, prefix="warmup")  # imports, first connections, a clock
            before = emu.stats()
            known = {r["id"] for r in before.get("requests") or []}
            fig = run_xasync(emu, n, k=k, prefix=f"p1-{n}-{k}")
            after = emu.stats()
            ids = {r["id"] for r in after.get("requests") or []} - known
            bound, timed = service_bound(after, ids, k)
            source = "service-side d_i"
            if bound is None or timed < n:
                bound = math.ceil(n / k) * t * (1 + jitter / 2)
                source = "nominal (no stats['requests'])"
            calls = (fig["create_calls"] + fig["status_calls"] + fig["lists"]) / n
            rows.append(
                {
                    "N": n,
                    "K": k,
                    "T_s": t,
                    "jitter": f"{jitter:.0%}",
                    "wall_s": round(fig["wall"], 2),
                    "bound_s": round(bound, 2),
                    "bound_from": source,
                    "ratio": round(fig["wall"] / bound, 3),
                    "calls_per_request": round(calls, 2),
                    "status_per_request": round(fig["status_calls"] / n, 2),
                    "lists_per_request": round(fig["lists"] / n, 3),
                    "429s": fig["rate_limited"],
                    "states": fig["states"],
                }
            )
    return rows


def run(n: int = 500, k: int = 10, t: float = 0.5, *, n_pool: int | None = None, n_seq: int = 10):
    """All three clients against one emulator; returns rows of figures."""
    n_pool = n if n_pool is None else n_pool
    rows = []
    with emulator_process(k, t) as emu:
        run_xasync(emu, k, k=k, prefix="warmup")  # imports, first connections
        for name, count, fn in (
            ("xasync", n, lambda: run_xasync(emu, n, k=k, prefix="xasync")),
            (
                "thread pool + fixed 1 s retry",
                n_pool,
                lambda: run_naive(emu, n_pool, threads=32, prefix="pool"),
            ),
            ("sequential, poll 1 s", n_seq, lambda: run_naive(emu, n_seq, threads=1, prefix="seq")),
        ):
            fig = fn()
            bound = math.ceil(count / k) * t
            calls = (fig["create_calls"] + fig["status_calls"] + fig["lists"]) / count
            rows.append(
                {
                    "client": name,
                    "N": count,
                    "wall_s": round(fig["wall"], 2),
                    "bound_s": bound,
                    "ratio": round(fig["wall"] / bound, 3),
                    "calls_per_request": round(calls, 2),
                    "creates": fig["creates"],
                    "create_calls": fig["create_calls"],
                    "status_calls": fig["status_calls"],
                    "s3_lists": fig["lists"],
                    "429s": fig["rate_limited"],
                    "returned_s": round(fig.get("returned", 0.0), 3),
                }
            )
    return rows


if __name__ == "__main__":
    import json

    from benchmarks._common import machine

    print(machine())
    for row in run_p1():
        print(json.dumps(row))
