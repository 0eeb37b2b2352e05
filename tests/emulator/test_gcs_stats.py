"""The GCS server's counters in ``emu.stats["gcs"]``, as the S3 server's are in ``stats["s3"]``."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
gcsfs = pytest.importorskip("gcsfs", reason="gcsfs is needed to talk to the GCS server")


def test_gcs_requests_and_bytes_are_counted_and_reset(emu):
    bucket = emu.create_gcs_bucket(f"gcs-{uuid.uuid4().hex[:12]}")[5:]
    emu.reset()
    assert emu.stats["gcs"]["requests"] == 0
    fs = gcsfs.GCSFileSystem(**emu.gcs_storage_options, skip_instance_cache=True)
    payload = os.urandom(5000)
    fs.pipe(f"{bucket}/a/b.bin", payload)
    fs.invalidate_cache()
    assert fs.ls(f"{bucket}/a", detail=False) == [f"{bucket}/a/b.bin"]
    before = emu.stats["gcs"]
    assert fs.cat(f"{bucket}/a/b.bin") == payload
    after = emu.stats["gcs"]
    assert before["put"] >= 1 and before["list"] >= 1
    assert after["get"] > before["get"]
    assert after["bytes_sent"] - before["bytes_sent"] >= len(payload)  # the body was counted
    assert after["requests"] == sum(after[k] for k in ("list", "get", "put", "delete", "other"))
    emu.reset()
    assert emu.stats["gcs"]["requests"] == 0 and emu.stats["gcs"]["bytes_sent"] == 0
