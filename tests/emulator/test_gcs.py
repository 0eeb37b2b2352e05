"""Delivery to Google Cloud Storage: ``delivery.gs`` validated, files written to a real GCS server.

Everything goes over HTTP: the Async API of the emulator, and gcsfs against its
gcp-storage-emulator server.
"""

from __future__ import annotations

import base64
import json
import os
import uuid

import numpy as np
import pytest
from emu_helpers import LEGACY, make_body, read_tif, wait_gone

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
gcsfs = pytest.importorskip("gcsfs", reason="gcsfs is needed to read a GCS delivery")


def _b64(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.fixture
def gcs_bucket(emu):
    return emu.create_gcs_bucket(f"gcs-{uuid.uuid4().hex[:12]}")[5:]


@pytest.fixture
def gfs(emu):
    return gcsfs.core.GCSFileSystem(**emu.gcs_storage_options, skip_instance_cache=True)


def gs_body(emu, bucket: str, *, prefix: str = "out", credentials=None, **kw) -> dict:
    body = make_body(bucket, prefix=prefix, **kw)
    creds = _b64(emu.gcs_credentials) if credentials is None else credentials
    body["output"]["delivery"] = {"gs": {"url": f"gs://{bucket}/{prefix}", "credentials": creds}}
    return body


def _read_tif(gfs, path: str) -> np.ndarray:
    import rasterio

    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"gs://{path}", opener=gfs) as ds,
    ):
        return ds.read()


def test_create_gcs_bucket_and_options(emu, gcs_bucket, gfs):
    assert emu.create_gcs_bucket(gcs_bucket) == f"gs://{gcs_bucket}"  # idempotent
    opts = emu.gcs_storage_options
    assert opts["endpoint_url"].startswith("http://127.0.0.1:") and opts["token"] == "anon"
    gfs.pipe(f"{gcs_bucket}/probe.txt", b"hello")
    assert gfs.cat(f"{gcs_bucket}/probe.txt") == b"hello"
    creds = emu.gcs_credentials
    assert creds["type"] == "service_account" and "PRIVATE KEY" in creds["private_key"]
    assert creds["private_key"] not in repr(emu) + repr(emu.gcs)


def test_gs_delivery_writes_outputs_and_request_copy(emu, api, gcs_bucket, gfs, out_bucket):
    r = api.post(LEGACY, json=gs_body(emu, gcs_bucket))
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    wait_gone(api, rid)
    found = set(gfs.find(f"{gcs_bucket}/out/{rid}"))
    assert found == {f"{gcs_bucket}/out/{rid}/default.tif", f"{gcs_bucket}/out/{rid}/request.json"}
    copy = json.loads(gfs.cat(f"{gcs_bucket}/out/{rid}/request.json"))
    assert copy["status"] == "DONE" and copy["processingUnits"] > 0
    assert copy["output"]["delivery"]["gs"]["credentials"] == "***"
    assert emu.gcs_credentials["private_key"] not in json.dumps(copy)
    # the same request delivered to S3 gives the same pixels
    r = api.post(LEGACY, json=make_body(out_bucket))
    rid_s3 = r.json()["id"]
    wait_gone(api, rid_s3)
    s3_pixels = read_tif(emu, out_bucket, f"out/{rid_s3}/default.tif")["data"]
    np.testing.assert_array_equal(_read_tif(gfs, f"{gcs_bucket}/out/{rid}/default.tif"), s3_pixels)


def test_gs_request_copy_written_before_answer_outputs_only_at_the_end(emu, api, gcs_bucket, gfs):
    with emu.hold():
        rid = api.post(LEGACY, json=gs_body(emu, gcs_bucket)).json()["id"]
        assert gfs.find(f"{gcs_bucket}/out/{rid}") == [f"{gcs_bucket}/out/{rid}/request.json"]
        assert api.get(f"{LEGACY}/{rid}").status_code == 200
    wait_gone(api, rid)
    gfs.invalidate_cache()  # find() above filled gcsfs's listing cache
    assert gfs.exists(f"{gcs_bucket}/out/{rid}/default.tif")


def test_gs_processing_failure_writes_error_json(emu, api, gcs_bucket, gfs):
    body = gs_body(emu, gcs_bucket, script="//VERSION=3\nfunction setup( {")
    rid = api.post(LEGACY, json=body).json()["id"]
    wait_gone(api, rid)
    error = json.loads(gfs.cat(f"{gcs_bucket}/out/{rid}/error.json"))
    assert error["message"]
    assert not gfs.exists(f"{gcs_bucket}/out/{rid}/default.tif")


def test_gs_templated_url(emu, api, gcs_bucket, gfs):
    body = gs_body(emu, gcs_bucket, prefix="t/<REQUEST_ID>/x_<OUTPUT>")
    rid = api.post(LEGACY, json=body).json()["id"]
    wait_gone(api, rid)
    assert gfs.exists(f"{gcs_bucket}/t/{rid}/x_default.tif")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d, e: d["gs"].update(url="s3://bucket/p"), "output.delivery.gs.url"),
        (lambda d, e: d["gs"].update(url="gs://ab"), "output.delivery.gs.url"),
        (lambda d, e: d["gs"].pop("credentials"), "output.delivery.gs.credentials"),
        (lambda d, e: d["gs"].update(credentials="not base64!"), "output.delivery.gs.credentials"),
        (
            lambda d, e: d["gs"].update(credentials=base64.b64encode(b"[1]").decode()),
            "output.delivery.gs.credentials",
        ),
        (
            lambda d, e: d["gs"].update(credentials=_b64({"type": "service_account"})),
            "output.delivery.gs.credentials",
        ),
        (
            lambda d, e: d["gs"].update(credentials=_b64({**e, "type": "authorized_user"})),
            "output.delivery.gs.credentials",
        ),
        (lambda d, e: d.update(s3={"url": "s3://b/p", "iamRoleARN": "r"}), "output.delivery"),
    ],
)
def test_gs_delivery_validation(emu, api, gcs_bucket, mutate, field):
    body = gs_body(emu, gcs_bucket)
    mutate(body["output"]["delivery"], emu.gcs_credentials)
    r = api.post(LEGACY, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(f"{field}:"), r.text
    assert emu.gcs_credentials["private_key"] not in r.text


def test_gs_unknown_bucket_is_refused_before_accepting(emu, api):
    before = emu.stats["create_calls"]
    r = api.post(LEGACY, json=gs_body(emu, f"missing-{uuid.uuid4().hex[:8]}"))
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("output.delivery.gs.url: bucket")
    assert emu.stats["create_calls"] == before + 1
    assert not [x for x in emu.stats["requests"] if x["ok"]]


def test_create_only_upload_is_refused_when_the_object_exists(emu, gcs_bucket, gfs):
    """gcsfs ``mode="create"`` sends ``ifGenerationMatch=0``: GCS answers 412 on an existing
    object (the server this emulator runs ignores preconditions; the emulator adds this one)."""
    path = f"{gcs_bucket}/claim.json"
    gfs.pipe_file(path, b"first", mode="create")
    with pytest.raises(FileExistsError):
        gfs.pipe_file(path, b"second", mode="create")
    assert gfs.cat(path) == b"first"
    gfs.pipe_file(path, b"third")  # a plain write still overwrites
    assert gfs.cat(path) == b"third"
