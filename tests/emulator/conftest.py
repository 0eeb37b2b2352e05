"""Fixtures of the emulator's tests: an authenticated HTTP client, a fresh bucket, boto3."""

from __future__ import annotations

import uuid

import httpx
import pytest
from emu_helpers import get_token


@pytest.fixture
def api(emu):
    """An httpx client on the emulator with a valid bearer token."""
    with httpx.Client(
        base_url=emu.base_url,
        headers={"Authorization": f"Bearer {get_token(emu)}"},
        timeout=15,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def _emu_s3_client(emulator):
    # one client for the session: a new boto3 client costs 0.2-0.5 s of CPU
    return emulator.s3.client()


@pytest.fixture
def s3c(emu, _emu_s3_client):
    """A boto3 client on the emulator's S3 server (shared by the session's tests)."""
    return _emu_s3_client


@pytest.fixture
def out_bucket(emu, _emu_s3_client):
    """A fresh bucket on the emulator's S3 server."""
    name = f"emu-{uuid.uuid4().hex[:12]}"
    _emu_s3_client.create_bucket(Bucket=name)
    return name
