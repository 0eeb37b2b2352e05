"""Benchmarks 1 and 2: throughput against the physical limit, and API calls per request.

**P1** (:func:`run_p1`): xasync alone, with 20 % jitter on the processing time, against the
work-conserving bound ``max(sum(d_i)/K, max(d_i))`` over the service-side durations ``d_i``
(accept to finish, read from the emulator's ``stats["requests"]``; when an emulator does not
expose them, the nominal ``ceil(N/K) * T * (1 + jitter/2)`` is used and the row says so).
Each row also gives ``perfect_client_s``: the wall time of a client with no overhead at all over
the same durations (:func:`perfect_client`), which no real client can beat, and
``perfect_client_simulated``: the same client's ratio to the bound over 200 simulated draws of
the nominal durations (:func:`perfect_client_average`; at N=200, K=20, T=5 s it averages 1.031:
the 1.02 goal is below what a non-clairvoyant client reaches on average).

Settings: ``python -m benchmarks.throughput`` runs both P1 settings (N=500, K=10, T=0.5 s and
N=200, K=20, T=5 s; about 4 minutes); ``--setting N,K,T`` (repeatable) picks others;
``--trace`` adds the loss decomposition (:func:`decompose`) from the submitter's DEBUG trace.

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

import contextlib
import heapq
import json
import logging
import math
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

import xasync
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


class TraceCollector(logging.Handler):
    """Keeps the submitter's trace events (:mod:`xasync.submitter.trace`) with their times."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, str, str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "xasync_trace", None)
        if event is not None:
            self.events.append((record.created, *event))

    @contextlib.contextmanager
    def attached(self):
        log = logging.getLogger("xasync.submitter.trace")
        level = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(self)
        try:
            yield self
        finally:
            log.removeHandler(self)
            log.setLevel(level)


def run_xasync(emu: EmulatorProcess, n: int, *, k: int, prefix: str, options: Any = None) -> dict:
    client = emu.client(concurrency=k)
    gdf = fields(n)
    before = emu.stats()
    start = time.perf_counter()
    epoch = time.time()
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery=f"s3://bench/{prefix}",
        storage_options=emu.storage_options,
        client=client,
        options=options,
    )
    returned = time.perf_counter() - start
    results.wait(progress=False)
    wall = time.perf_counter() - start
    states = results.status()["state"].value_counts().to_dict()
    client.close()
    out = {"wall": wall, "returned": returned, "states": states, **_delta(before, emu.stats())}
    return {**out, "epoch": epoch}


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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def perfect_client(requests: list[dict], k: int) -> float:
    """Wall time of a client with no overhead at all (each slot starts the next request the
    instant its request ends) over the same service-side durations, in acceptance order: the
    best a non-clairvoyant client can do. Above the work-conserving bound when the last
    requests end unevenly (few waves, jitter)."""
    timed = sorted(
        (r for r in requests if r.get("finished") is not None), key=lambda r: r["accepted"]
    )
    durations = [r["finished"] - r["accepted"] for r in timed]
    slots = [0.0] * k
    for d in durations:
        heapq.heapreplace(slots, slots[0] + d)
    return max(slots)


def perfect_client_average(n: int, k: int, t: float, jitter: float, seeds: int = 200) -> dict:
    """The zero-overhead client (:func:`perfect_client`) over ``seeds`` simulated draws of
    ``n`` durations ``t + U(0, jitter t)``: its mean ratio to the work-conserving bound and the
    share of draws at or under 1.02 (what any non-clairvoyant client can reach on average)."""
    import random

    ratios = []
    for seed in range(seeds):
        rnd = random.Random(seed)
        durations = [t + rnd.uniform(0, jitter * t) for _ in range(n)]
        requests = [{"accepted": 0.0, "finished": d} for d in durations]
        bound = max(sum(durations) / k, max(durations))
        ratios.append(perfect_client(requests, k) / bound)
    return {
        "mean": round(statistics.mean(ratios), 3),
        "min": round(min(ratios), 3),
        "max": round(max(ratios), 3),
        "share_at_most_1.02": round(sum(r <= 1.02 for r in ratios) / seeds, 2),
        "seeds": seeds,
    }


def decompose(events: list, requests: list[dict], k: int, epoch: float, wall: float) -> dict:
    """Where the slot-time went: ``K * wall`` split into service time and the client's losses.

    ``events``: a :class:`TraceCollector`'s events of one run; ``requests``: the emulator's
    ``stats["requests"]`` of that run (accept/finish times); ``epoch``: wall-clock start of the
    run. Every loss is in slot-seconds divided by K (seconds of wall time), so that
    ``wall = service + losses``, ``service = sum(d_i) / K``.
    """
    by_url: dict[str, dict] = {}
    by_rid: dict[str, dict] = {}
    for t, event, key, value in events:
        if event in ("slot", "confirmed"):
            by_url.setdefault(key, {}).setdefault(event, t)
        elif event == "create_sent":  # the last attempt (after refused probes or 429s)
            by_url.setdefault(key, {})[event] = t
        elif event == "created":
            by_url.setdefault(key, {})["created"] = t
            by_rid[str(value)] = by_url[key]
        elif event == "status":
            row = by_rid.setdefault(key, {})
            row.setdefault("status", []).append((t, value))
        elif event == "released":
            by_rid.setdefault(key, {})["released"] = t
    svc = {r["id"]: r for r in requests}
    rows = []
    for rid, row in by_rid.items():
        r = svc.get(rid)
        if r is None or r.get("finished") is None or "slot" not in row:
            continue
        seen = [t for t, running in row.get("status", []) if not running]
        late = [t for t, running in row.get("status", []) if running and t > r["finished"]]
        rows.append(
            {
                **row,
                "accepted": r["accepted"],
                "finished": r["finished"],
                "seen": seen[0] if seen else row.get("released", r["finished"]),
                "calls": len(row.get("status", [])),
                "late_running": len(late),
            }
        )
    if not rows:
        return {}
    acquires = sorted(r["slot"] for r in rows)
    releases = sorted(r["released"] for r in rows if "released" in r)
    handoff = [max(0.0, a - rel) for a, rel in zip(acquires[k:], releases)]
    parts = {
        "claim_and_body": [r["create_sent"] - r["slot"] for r in rows],
        "create_to_accept": [r["accepted"] - r["create_sent"] for r in rows],
        "detection": [r["seen"] - r["finished"] for r in rows],
        "seen_to_release": [r.get("released", r["seen"]) - r["seen"] for r in rows],
        "handoff": handoff,
    }
    service = sum(r["finished"] - r["accepted"] for r in rows) / k
    out: dict = {"requests": len(rows), "wall_s": round(wall, 3), "service_s": round(service, 3)}
    accounted = service
    for name, values in parts.items():
        total = sum(values) / k
        accounted += total
        out[f"{name}_s"] = round(total, 3)
        out[f"{name}_ms_median"] = round(1000 * statistics.median(values), 1) if values else None
        out[f"{name}_ms_p90"] = round(1000 * _pct(values, 0.9), 1)
    out["head_s"] = round(acquires[0] - epoch, 3)  # process() planning, probe, first slot
    end = max(r.get("confirmed", r["seen"]) for r in rows)
    out["confirm_tail_s"] = round(epoch + wall - max(r["seen"] for r in rows), 3)
    out["idle_and_tail_s"] = round(wall - accounted - out["head_s"], 3)
    out["last_confirm_to_return_s"] = round(epoch + wall - end, 3)
    out["status_calls_per_request"] = round(statistics.mean(r["calls"] for r in rows), 2)
    ordered = sorted(rows, key=lambda r: r["slot"])
    late = ordered[len(ordered) // 2 :]
    out["status_calls_per_request_2nd_half"] = round(statistics.mean(r["calls"] for r in late), 2)
    firsts = [r["status"][0][1] for r in late if r.get("status")]
    out["first_call_running_share_2nd_half"] = round(sum(firsts) / max(1, len(firsts)), 3)
    out["calls_histogram"] = dict(sorted(Counter(r["calls"] for r in rows).items()))
    out["status_calls_after_finish"] = sum(r["late_running"] for r in rows)
    return out


def _stat(values: list[float]) -> dict:
    """Median and 90th percentile in ms, and the count."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "ms_median": round(1000 * statistics.median(values), 1),
        "ms_p90": round(1000 * _pct(values, 0.9), 1),
    }


def round_trips(events: list, calls: list[dict], requests: list[dict]) -> dict:
    """Each create and status call of one run split at the emulator's handler (its entry and
    answer, :meth:`Emulator.calls`): client send -> handler entry, the handler itself, handler
    answer -> the client sees the answer; plus how late status calls left on their schedule."""
    sent: dict[str, list[float]] = {}
    late: list[float] = []
    created: dict[str, tuple[float, float]] = {}  # request id -> (create sent, answer seen)
    create_sent: dict[str, float] = {}
    seen: dict[str, list[float]] = {}
    for t, event, key, value in events:
        if event == "status_sent":
            sent.setdefault(key, []).append(t)
            late.append(float(value))
        elif event == "status":
            seen.setdefault(key, []).append(t)
        elif event == "create_sent":
            create_sent[key] = t
        elif event == "created":
            created[str(value)] = (create_sent.get(key, float("nan")), t)
    handled: dict[tuple[str, str], list[dict]] = {}
    for c in calls:
        if c["id"] is not None:
            handled.setdefault((c["kind"], c["id"]), []).append(c)
    accepted = {r["id"]: r["accepted"] for r in requests}
    out: dict = {"status_lateness": _stat(late)}
    parts: dict[str, list[float]] = {k: [] for k in ("in", "handler", "out")}
    for rid, times in sent.items():
        for t0, c, t1 in zip(times, handled.get(("status", rid), []), seen.get(rid, [])):
            parts["in"].append(c["start"] - t0)
            parts["handler"].append(c["end"] - c["start"])
            parts["out"].append(t1 - c["end"])
    out.update({f"status_{k}": _stat(v) for k, v in parts.items()})
    cparts: dict[str, list[float]] = {k: [] for k in ("in", "to_accept", "accept_to_answer", "out")}
    for rid, (t0, t1) in created.items():
        hits = handled.get(("create", rid))
        if not hits or rid not in accepted:
            continue
        c = hits[0]
        cparts["in"].append(c["start"] - t0)
        cparts["to_accept"].append(accepted[rid] - c["start"])
        cparts["accept_to_answer"].append(c["end"] - accepted[rid])
        cparts["out"].append(t1 - c["end"])
    out.update({f"create_{k}": _stat(v) for k, v in cparts.items()})
    return out


def run_p1(
    settings=((500, 10, 0.5), (200, 20, 5.0)),
    jitter: float = 0.2,
    *,
    trace: bool = False,
    dump: str | None = None,
    profile: str | None = None,
    s3_in_process: bool = False,
    probe_creates: bool = False,
) -> list[dict]:
    """P1: wall time / work-conserving bound and calls per request, one emulator per setting.

    ``trace=True`` also decomposes the loss (:func:`decompose`) from the submitter's DEBUG trace
    events; the trace costs a little client CPU. ``profile``: a file prefix for a CPU profile
    of the emulator process (yappi, every thread) per setting. ``s3_in_process``: the S3
    server in the API emulator's process (as before 2026-12-01 16:50; by default it has its own).
    ``probe_creates``: ``SubmitOptions(probe_creates=True)`` (create probes instead of most
    first status calls; refused creates are counted in ``create_calls``).
    """
    options = xasync.SubmitOptions(probe_creates=True) if probe_creates else None
    rows = []
    for n, k, t in settings:
        prof = f"{profile}-{n}-{k}-{t:g}.pstat" if profile else None
        with emulator_process(
            k, t, jitter=jitter * t, profile=prof, s3_in_process=s3_in_process
        ) as emu:
            run_xasync(
                emu, k, k=k, prefix="warmup", options=options
            )  # imports, first connections, a clock
            before = emu.stats()
            known = {r["id"] for r in before.get("requests") or []}
            collector = TraceCollector()
            with collector.attached() if trace else contextlib.nullcontext():
                fig = run_xasync(emu, n, k=k, prefix=f"p1-{n}-{k}", options=options)
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
            mine = [r for r in after.get("requests") or [] if r["id"] in ids]
            rows[-1]["perfect_client_simulated"] = perfect_client_average(n, k, t, jitter)
            if source == "service-side d_i":
                perfect = perfect_client(mine, k)
                rows[-1]["perfect_client_s"] = round(perfect, 2)
                rows[-1]["ratio_to_perfect_client"] = round(fig["wall"] / perfect, 3)
            if trace:
                rows[-1]["loss"] = decompose(collector.events, mine, k, fig["epoch"], fig["wall"])
                handled = [c for c in emu.calls() if c["start"] >= fig["epoch"]]
                rows[-1]["round_trips"] = round_trips(collector.events, handled, mine)
            if trace and dump:
                with open(f"{dump}-{n}-{k}-{t:g}.json", "w") as out:
                    json.dump({"events": collector.events, "requests": mine, "calls": handled}, out)
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
    import argparse

    from benchmarks._common import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", action="store_true", help="decompose the loss per cycle")
    parser.add_argument("--dump", metavar="PREFIX", help="with --trace: write the raw events")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="CPU profile of the emulator process (needs yappi)"
    )
    parser.add_argument(
        "--s3-in-process", action="store_true", help="S3 server in the API emulator's process"
    )
    parser.add_argument(
        "--probe-creates", action="store_true", help="SubmitOptions(probe_creates=True)"
    )
    parser.add_argument(
        "--setting",
        action="append",
        metavar="N,K,T",
        help="one setting (repeatable); default: 500,10,0.5 and 200,20,5",
    )
    args = parser.parse_args()
    chosen = [tuple(float(x) for x in s.split(",")) for s in args.setting or ()]
    settings = [(int(n), int(k), t) for n, k, t in chosen] or ((500, 10, 0.5), (200, 20, 5.0))
    print(machine())
    rows = run_p1(
        settings,
        trace=args.trace,
        dump=args.dump,
        profile=args.profile,
        s3_in_process=args.s3_in_process,
        probe_creates=args.probe_creates,
    )
    for row in rows:
        print(json.dumps(row))
