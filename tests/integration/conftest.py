"""Fixtures of the end-to-end tests (the evalscripts and field builders are in ``_shared.py``,
the pack-reuse pieces in ``_packs.py``)."""

from __future__ import annotations

import uuid

import pytest

import xasync

from ._packs import PACK, creates, pack_fields, run_and_wait


@pytest.fixture
def e2e(emu):
    """``(emu, client, root)``: the reset emulator, a client on it, a fresh ``s3://`` bucket."""
    root = emu.create_bucket(f"e2e-{uuid.uuid4().hex[:12]}")
    client = xasync.Client.from_emulator(emu)
    try:
        yield emu, client, root
    finally:
        client.close()


@pytest.fixture
def pack_e2e(e2e):
    """``e2e`` with 8 concurrent requests of 0.05 s (the pack-reuse tests)."""
    e2e[0].configure(concurrency_limit=8, processing_seconds=0.05)
    return e2e


@pytest.fixture
def packed(pack_e2e):
    """``(emu, client, root, gdf, results)``: the 12 fields bought packed (with ``mask=True``)."""
    emu, client, root = pack_e2e
    gdf = pack_fields()
    res = run_and_wait(gdf, emu, client, f"{root}/p", **PACK)
    assert (res.status()["state"] == "done").all()
    assert 2 <= creates(emu) <= 4
    return emu, client, root, gdf, res
