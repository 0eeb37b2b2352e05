"""Shared pieces of the reliability tests: a small evalscript, field geometries, clients."""

from __future__ import annotations

import uuid

from integration._shared import NDVI, TIME, fields  # one definition for every e2e suite

import xasync

__all__ = ["NDVI", "RES", "TIME", "assert_no_duplicate_creates", "fields", "fresh_root"]

#: 0.0002 deg pixels: each field is a ~24 x 19 px raster (cheap to make and to read)
RES = 0.0002


def fresh_root(emu, tag: str) -> str:
    """A new bucket on the emulator's S3 server."""
    return emu.create_bucket(f"rel-{tag}-{uuid.uuid4().hex[:10]}")


def learning_client(emu, *, new_account: bool = True) -> xasync.Client:
    """A client that does NOT know the account's concurrency limit (it must learn it).

    ``new_account`` makes a fresh OAuth2 client at the emulator, so that no limit learned by an
    earlier test (the submitter is process-wide and keys accounts by client id) is reused.
    """
    client_id, client_secret = (
        emu.add_client() if new_account else (emu.client_id, emu.client_secret)
    )
    return xasync.Client(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=client_id,
        client_secret=client_secret,
    )


def assert_no_duplicate_creates(stats: dict, n_rows: int) -> None:
    """Every row prefix was bought exactly once, and nothing else was bought."""
    by_prefix = stats["creates_by_prefix"]
    dup = {k: v for k, v in by_prefix.items() if v != 1}
    assert not dup, f"prefixes bought more than once: {dup}"
    assert len(by_prefix) == n_rows, (len(by_prefix), n_rows)
    assert stats["creates"] == n_rows, stats
