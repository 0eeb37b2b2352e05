"""Fixtures of the end-to-end tests (the evalscripts and field builders are in ``_shared.py``)."""

from __future__ import annotations

import uuid

import pytest

import xasync


@pytest.fixture
def e2e(emu):
    """``(emu, client, root)``: the reset emulator, a client on it, a fresh ``s3://`` bucket."""
    root = emu.create_bucket(f"e2e-{uuid.uuid4().hex[:12]}")
    client = xasync.Client.from_emulator(emu)
    try:
        yield emu, client, root
    finally:
        client.close()
