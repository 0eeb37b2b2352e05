"""A client's connection (endpoint, credentials) is its own, and dies with it.

The submitter is process-wide and keeps one AsyncApi per client. It must route each client's
requests to that client's endpoint with its credentials (else another account is billed), and it
must not keep a client (its secret, its connection pool) alive once the user dropped it. It
holds clients weakly, so a later client can never inherit a collected one's connection, whatever
address the allocator gives it.
"""

from __future__ import annotations

import gc
import time
import weakref

import pytest

import xasync
from xasync.emulator import Emulator

from ._helpers import NDVI, RES, TIME, fields, fresh_root

pytestmark = pytest.mark.faults


def test_each_client_buys_at_its_own_account(emu):
    root = fresh_root(emu, "lifecycle")
    with Emulator(processing_seconds=0.1, concurrency_limit=2) as other:
        first = xasync.Client.from_emulator(emu)
        second = xasync.Client.from_emulator(other)
        try:
            a = fields(2, lat0=30.0).xasync.process(
                NDVI,
                time=TIME,
                resolution=RES,
                delivery=f"{root}/a",
                storage_options=emu.storage_options,
                client=first,
            )
            b = fields(3, lat0=31.0).xasync.process(
                NDVI,
                time=TIME,
                resolution=RES,
                delivery=f"{root}/b",
                storage_options=emu.storage_options,  # moto's buckets are process-wide
                client=second,
            )
            a.wait(timeout=30, progress=False)
            b.wait(timeout=30, progress=False)
        finally:
            first.close()
            second.close()
        assert (other.stats["creates"], emu.stats["creates"]) == (3, 2)


def test_a_dropped_client_is_not_kept_alive_by_the_submitter(emu):
    root = fresh_root(emu, "dropped")
    client = xasync.Client.from_emulator(emu)
    fields(1, lat0=32.0).xasync.process(
        NDVI,
        time=TIME,
        resolution=RES,
        delivery=f"{root}/c",
        storage_options=emu.storage_options,
        client=client,
    ).wait(timeout=30, progress=False)
    ref = weakref.ref(client)
    client.close()
    del client
    deadline = time.monotonic() + 10  # the job's coroutine lets go once it has returned
    while ref() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert ref() is None, gc.get_referrers(ref())
