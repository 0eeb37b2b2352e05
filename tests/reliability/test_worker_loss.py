"""A dask worker process dies during compute (issue 6, test 7): the compute still succeeds with
the same values, because the graph holds only URLs and plain config (dask recomputes lost keys)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import xasync

from ._helpers import NDVI, RES, TIME, fields, fresh_root

pytestmark = [pytest.mark.distributed, pytest.mark.faults]


def test_worker_killed_mid_compute(emu):
    distributed = pytest.importorskip("distributed")
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "worker")
    try:
        results = fields(12).xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/w",
            storage_options=emu.storage_options,
            client=client,
            chunks=8,  # many small read tasks, so that the compute lasts a while
        )
        results.wait(timeout=60, progress=False)
    finally:
        client.close()
    assert (results.status()["state"] == "done").all()
    expected = [ds["ndvi"].compute(scheduler="threads").values for ds in results]

    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as dclient,
    ):
        pids_before = dclient.run(os.getpid)
        futures = dclient.compute([ds["ndvi"] for ds in results])
        deadline = time.monotonic() + 60
        while not any(f.done() for f in futures):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        pending_at_kill = sum(not f.done() for f in futures)
        victim = sorted(pids_before.values())[0]
        os.kill(victim, signal.SIGKILL)
        computed = dclient.gather(futures)  # lost keys are recomputed elsewhere
        dclient.wait_for_workers(1, timeout=30)
        pids_after = dclient.run(os.getpid)
    print(f"\nworker loss: killed pid {victim} with {pending_at_kill}/12 datasets pending")
    assert pending_at_kill > 0, "the compute finished before the worker was killed"
    assert victim not in pids_after.values()
    for got, want in zip(computed, expected, strict=True):
        np.testing.assert_array_equal(got.values, want)
