"""Fixtures of the unit tests that run rows against the emulator."""

from __future__ import annotations

import os

import pytest

import xasync


@pytest.fixture
def own_account(emu):
    """A factory ``own_account(concurrency, processing_seconds, tag) -> (client, root)``.

    Configures the emulator (``concurrency_limit=concurrency``), makes a client of a new account
    there (so that its K and polling clock in the process-wide submitter are its own) that
    knows K, and a fresh bucket ``s3://<tag>-...``. The clients are closed after the test.
    """
    clients: list[xasync.Client] = []

    def make(concurrency: int, processing_seconds: float, tag: str):
        emu.configure(concurrency_limit=concurrency, processing_seconds=processing_seconds)
        client_id, secret = emu.add_client()
        client = xasync.Client.from_emulator(
            emu, client_id=client_id, client_secret=secret, concurrency=concurrency
        )
        clients.append(client)
        return client, emu.create_bucket(f"{tag}-{os.urandom(5).hex()}")

    yield make
    for client in clients:
        client.close()
