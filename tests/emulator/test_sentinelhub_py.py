"""A third-party client, sentinelhub-py, drives the emulator unchanged (spec section 12)."""

from __future__ import annotations

import time
import uuid

import pytest
from emu_helpers import keys, read_json, read_tif

from xasync import _contract as C

sentinelhub = pytest.importorskip("sentinelhub", reason="sentinelhub-py is a test extra")

EVALSCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B03", "B04"]}], output: {bands: 3, sampleType: "UINT16"}};
}
function evaluatePixel(s) { return [s.B04 * 10000, s.B03 * 10000, s.B02 * 10000]; }
"""


def test_async_process_request_round_trip(emu, out_bucket, s3c, monkeypatch):
    # oauthlib refuses plain-http token URLs unless told that loopback http is fine.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    from sentinelhub import (
        CRS,
        AsyncProcessRequest,
        BBox,
        DataCollection,
        MimeType,
        SHConfig,
        get_async_running_status,
    )

    emu.configure(processing_seconds=1.0)
    config = SHConfig(
        sh_base_url=emu.base_url,
        sh_token_url=emu.token_url,
        sh_client_id=emu.client_id,
        sh_client_secret=emu.client_secret,
        max_download_attempts=1,
    )
    collection = DataCollection.SENTINEL2_L2A.define_from(
        f"emu-s2l2a-{uuid.uuid4().hex[:8]}", service_url=emu.base_url
    )
    bbox = BBox((13.0, 45.0, 13.05, 45.04), crs=CRS.WGS84)
    request = AsyncProcessRequest(
        evalscript=EVALSCRIPT,
        input_data=[
            AsyncProcessRequest.input_data(
                data_collection=collection, time_interval=("2023-06-01", "2023-06-30")
            )
        ],
        responses=[AsyncProcessRequest.output_response("default", MimeType.TIFF)],
        delivery=AsyncProcessRequest.s3_specification(
            url=f"s3://{out_bucket}/shpy", access_key="k", secret_access_key="s"
        ),
        bbox=bbox,
        size=(50, 40),
        config=config,
    )
    with emu.hold():  # RUNNING until released, however slow the machine is
        answer = request.get_data()[0]
        assert answer["status"] == "RUNNING"
        rid = answer["id"]
        assert get_async_running_status([rid], config=config) == {rid: True}
    t0 = time.monotonic()
    while get_async_running_status([rid], config=config)[rid]:
        assert time.monotonic() - t0 < 60  # a guard against hangs, not a measurement
        time.sleep(0.1)
    assert keys(s3c, out_bucket) == {f"shpy/{rid}/default.tif", f"shpy/{rid}/{C.REQUEST_COPY_FILE}"}
    tif = read_tif(emu, out_bucket, f"shpy/{rid}/default.tif")
    assert (tif["width"], tif["height"], tif["count"], tif["dtype"]) == (50, 40, 3, "uint16")
    assert tif["transform"].c == 13.0
    assert tif["transform"].f == 45.04
    copy = read_json(s3c, out_bucket, f"shpy/{rid}/{C.REQUEST_COPY_FILE}")
    assert copy[C.REQUEST_COPY_COST_FIELD] == 10.0
    assert copy["input"]["data"][0]["type"] == "sentinel-2-l2a"
    stats = emu.stats
    assert stats["token_calls"] >= 1
    assert stats["creates"] == 1
