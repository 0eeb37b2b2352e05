"""The submitter's storage errors name the delivery's storage: GCS for ``gs://``, S3 for ``s3://``.

Against the emulator's S3 and GCS servers: a claim written into a bucket that does not exist
fails with a :class:`~xasync.errors.TransportError` whose text names the storage it is.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import s3fs

from xasync.errors import TransportError
from xasync.submitter import claim
from xasync.submitter.s3 import probe, storage_name

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture
def gcs(emu):
    gcsfs = pytest.importorskip("gcsfs", reason="gcsfs (xasync[gcs]) reads gs:// deliveries")
    return gcsfs.core.GCSFileSystem(**emu.gcs_storage_options, skip_instance_cache=True)


@pytest.fixture
def s3(emu):
    return s3fs.S3FileSystem(**emu.storage_options, skip_instance_cache=True)


def test_storage_names():
    from fsspec.implementations.memory import MemoryFileSystem

    assert storage_name(s3fs.S3FileSystem(anon=True)) == "S3"
    assert storage_name(MemoryFileSystem()) == "memory:// storage"


def test_a_failed_claim_on_gcs_says_gcs(gcs):
    assert storage_name(gcs) == "GCS"
    url = f"gs://no-such-bucket-{os.urandom(4).hex()}/row/abc"
    with pytest.raises(TransportError, match=r"^GCS claim write failed") as info:
        claim.take(gcs, url, 0, "me")
    assert "S3" not in str(info.value)


def test_a_failed_claim_on_s3_says_s3(s3):
    url = f"s3://no-such-bucket-{os.urandom(4).hex()}/row/abc"
    with pytest.raises(TransportError, match=r"^S3 claim write failed"):
        claim.take(s3, url, 0, "me")


def test_a_failed_listing_on_gcs_says_gcs(gcs):
    class Failing(type(gcs)):  # the emulator's GCS server, whose listing breaks
        def find(self, *args, **kwargs):
            raise ConnectionError("connection reset by peer")

    broken = Failing(**gcs.storage_options, skip_instance_cache=True)
    url = "gs://bucket/row/abc"
    with pytest.raises(TransportError, match=r"^GCS listing failed") as info:
        asyncio.run(probe(broken, {url: ("ndvi",)}))
    assert "S3" not in str(info.value)
