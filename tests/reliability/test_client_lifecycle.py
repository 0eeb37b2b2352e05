"""A closed client must not lend its connection (endpoint, credentials) to a later client.

The submitter is process-wide and keeps one AsyncApi per client. Python reuses the memory (and
so the ``id()``) of a collected object: a new client born at a dead client's address must still
send its requests to ITS endpoint, with ITS credentials (else another account is billed).
"""

from __future__ import annotations

import gc

import pytest

import xasync
from xasync.emulator import Emulator

from ._helpers import NDVI, RES, TIME, fields, fresh_root

pytestmark = pytest.mark.faults


def client_at_address(address: int, emu) -> xasync.Client | None:
    """A client for ``emu`` allocated at ``address``, if the allocator gives that one back."""
    keep = []  # candidates stay alive so that the allocator hands out new addresses
    for _ in range(5000):
        # allocate first (as ``Client(...)`` does), then initialise the one that landed at the
        # old address: the same object ``Client(...)`` would have made there
        candidate = xasync.Client.__new__(xasync.Client)
        if id(candidate) == address:
            candidate.__init__(
                base_url=emu.base_url,
                token_url=emu.token_url,
                client_id=emu.client_id,
                client_secret=emu.client_secret,
                concurrency=emu.concurrency_limit,
            )
            return candidate
        keep.append(candidate)
    return None


def test_new_client_at_a_dead_clients_address_uses_its_own_account(emu):
    root = fresh_root(emu, "lifecycle")
    with Emulator(processing_seconds=0.1, concurrency_limit=2) as other:
        second = None
        for attempt in range(5):  # another thread may grab the freed memory first: retry
            first = xasync.Client.from_emulator(emu)
            fields(1, lat0=30.0 + attempt).xasync.process(
                NDVI,
                time=TIME,
                resolution=RES,
                delivery=f"{root}/a",
                storage_options=emu.storage_options,
                client=first,
            ).wait(timeout=30, progress=False)
            old_id = id(first)
            first.close()
            del first
            gc.collect()
            second = client_at_address(old_id, other)
            if second is not None:
                break
        if second is None:
            pytest.skip("CPython did not reuse a closed client's address in 5 tries")
        creates_before = emu.stats["creates"]
        results = fields(1, lat0=41.0).xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/b",
            storage_options=emu.storage_options,  # the same moto buckets serve both emulators
            client=second,
        )
        results.wait(timeout=30, progress=False)
        second.close()
        bought_at_other = other.stats["creates"]
    assert emu.stats["creates"] == creates_before, "the request went to the dead client's account"
    assert bought_at_other == 1
