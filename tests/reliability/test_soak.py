"""Soak (issue 6, test 10): many rows with every fault on.

CI size 60 rows; ``XASYNC_SOAK_ROWS=500`` for the full size. Checks: every row ends done, or
failed exactly where the service wrote ``error.json``; nothing bought twice; memory growth
bounded; no thread, socket or file descriptor left behind once results are done and the
client is closed (threads are compared with a warmed-up baseline that already holds the
submitter's daemon thread ``xasync-submitter`` and fsspec's ``fsspecIO``). The emulator's
werkzeug server speaks HTTP/1.0 and closes every connection, so a keep-alive pool left open by the
client would only show against the real service; the fd count still catches leaked sockets.
"""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np
import psutil
import pytest

import xasync
from xasync.emulator import Faults

from ._helpers import NDVI, RES, TIME, fields, fresh_root
from .test_faults import error_json_by_prefix

pytestmark = [pytest.mark.faults, pytest.mark.slow]

ROWS = int(os.environ.get("XASYNC_SOAK_ROWS", "60"))
# process-wide pools that are reused, not leaked: the submitter loop's executor (grows up to
# its max_workers) and the in-process emulator's job threads (test infrastructure)
ALLOWED_THREADS = ("asyncio_", "xasync-emu-")


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def api_sockets(port: int) -> list:
    """Client-side TCP connections of this process to the emulator's API port."""
    return [
        c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port
    ]


def settle(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        gc.collect()
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_soak_with_faults(emu):
    api_port = int(emu.base_url.rsplit(":", 1)[1])
    emu.configure(
        concurrency_limit=8,
        processing_seconds=0.2,
        faults=Faults(
            rate_limit=0.05,
            server_error=0.03,
            drop_connection=0.03,
            failure_rate=0.1,
            processing_jitter=0.2,
            seed=2026,
        ),
    )
    root = fresh_root(emu, "soak")
    # warm-up: imports, GDAL, the submitter's thread and fsspec's loop exist before the baseline
    with xasync.Client.from_emulator(emu) as warm:
        fields(2, lat0=40.0).xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/warm",
            storage_options=emu.storage_options,
            client=warm,
        ).wait(timeout=60, progress=False)[0].compute()
    emu.reset()
    gc.collect()
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = psutil.Process().num_fds()
    rss_before = rss_mb()
    started = time.monotonic()

    client = xasync.Client.from_emulator(emu)
    gdf = fields(ROWS)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=RES,
        delivery=f"{root}/soak",
        storage_options=emu.storage_options,
        client=client,
        options=xasync.SubmitOptions(ambiguous_grace=0.5),
    )
    results.wait(timeout=60 + ROWS * 1.0, progress=False)
    elapsed = time.monotonic() - started
    status = results.status()
    stats = emu.stats
    injected = error_json_by_prefix(emu, root)

    # outcome: done, or failed exactly as injected, with the service's message
    row_urls = [ds.encoding["xasync"]["row_url"] for ds in results]
    failed_urls = {u for u, s in zip(row_urls, status["state"]) if s == "failed"}
    assert set(status["state"]) <= {"done", "failed"}, status["state"].value_counts()
    assert failed_urls == set(injected), failed_urls ^ set(injected)
    assert len(injected) == stats["failed"]
    for url, err in zip(row_urls, status["error"]):
        if url in injected:
            assert injected[url] in err
    # nothing bought twice
    dup = {k: v for k, v in stats["creates_by_prefix"].items() if v != 1}
    assert not dup and stats["creates"] == ROWS, (dup, stats["creates"])
    assert len(stats["creates_by_prefix"]) == ROWS
    # a sample of the done rows computes
    done_idx = [i for i, s in enumerate(status["state"]) if s == "done"]
    for i in done_idx[:: max(1, len(done_idx) // 5)]:
        assert np.isfinite(results[i]["ndvi"].values).all()
    rss_peak = rss_mb()
    open_before_close = len(api_sockets(api_port))

    client.close()
    del results
    sockets_left = settle(lambda: not api_sockets(api_port))
    extra_threads = [
        t for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()
    ]
    unexpected = [t.name for t in extra_threads if not t.name.startswith(ALLOWED_THREADS)]
    fds_after = psutil.Process().num_fds()
    growth = rss_peak - rss_before
    print(
        f"\nsoak {ROWS} rows: {elapsed:.1f} s, done={len(done_idx)} failed={len(failed_urls)}, "
        f"creates={stats['creates']} create_calls={stats['create_calls']} "
        f"429={stats['rate_limited']} 5xx={stats['server_errors']} dropped={stats['dropped']} "
        f"(after accept {stats['dropped_after_accept']}) status_calls={stats['status_calls']}, "
        f"RSS {rss_before:.0f} -> {rss_peak:.0f} MB, fds {fds_before} -> {fds_after}, "
        f"new threads {[t.name for t in extra_threads]}, "
        f"api sockets open {open_before_close} -> left {len(api_sockets(api_port))}"
    )
    assert stats["rate_limited"] + stats["server_errors"] + stats["dropped"] > 0
    assert growth < 100 + 0.2 * ROWS, f"RSS grew by {growth:.0f} MB"
    assert not unexpected, unexpected
    assert sockets_left, f"connections to the API left open: {api_sockets(api_port)}"
    assert fds_after <= fds_before + 8, (fds_before, fds_after)
