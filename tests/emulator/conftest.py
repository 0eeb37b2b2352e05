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


@pytest.fixture
def out_bucket(emu):
    """A fresh bucket on the emulator's S3 server."""
    name = f"emu-{uuid.uuid4().hex[:12]}"
    emu.create_bucket(name)
    return name


@pytest.fixture
def s3c(emu):
    """A boto3 client on the emulator's S3 server."""
    return emu.s3.client()
