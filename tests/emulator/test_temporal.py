"""The emulator learns time (issue 14 item 3): a documented calendar, SIMPLE picking a scene by
mosaickingOrder, ORBIT/TILE with preProcessScenes, updateOutput, updateOutputMetadata."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
from emu_helpers import (
    LEGACY,
    centres,
    get_token,
    keys,
    make_body,
    read_json,
    read_tif,
    s2_scene_dates,
    scene,
    wait_gone,
)

from xasync import _contract as C
from xasync.emulator.acquisitions import scenes_between
from xasync.emulator.process import COST_FACTORS_FIELD

UTC = timezone.utc
SEASON = ("2024-05-01T00:00:00Z", "2024-08-31T23:59:59Z")
SEASON_DT = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 8, 31, 23, 59, 59, tzinfo=UTC))
BBOX = (13.0, 45.0, 13.01, 45.008)
SIZE = (20, 16)

NDVI_SIMPLE = """//VERSION=3
function setup() { return {input: ["B04", "B08"], output: {bands: 2, sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [s.B04, s.B08]; }
"""

NDVI_ORBIT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}],
          output: {bands: 1, sampleType: SampleType.FLOAT32}, mosaicking: Mosaicking.ORBIT};
}
function updateOutput(outputs, collection) {
  Object.values(outputs).forEach((output) => { output.bands = collection.scenes.length; });
}
function evaluatePixel(samples, scenes) {
  return samples.map((s) => (s.B08 - s.B04) / (s.B08 + s.B04));
}
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {dates: scenes.map((s) => s.date), orbits: scenes.orbits.length,
                             factor: inputMetadata.normalizationFactor};
}
"""


def _ndvi(lon, lat, date):
    b4, b8 = scene("B04", lon, lat, date), scene("B08", lon, lat, date)
    return (b8 - b4) / (b8 + b4)


def _lonlat():
    return centres(BBOX, *SIZE)


def _run(api, bucket, script, time_range=SEASON, responses=("default",), **data_filter):
    body = make_body(bucket, script=script, bbox=BBOX, size=SIZE, time_range=time_range)
    body["output"]["responses"] = [
        {
            "identifier": r,
            "format": {"type": "application/json" if r == "userdata" else "image/tiff"},
        }
        for r in responses
    ]
    body["input"]["data"][0]["dataFilter"].update(data_filter)
    r = api.post(LEGACY, json=body)
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    wait_gone(api, rid, timeout=60)
    return rid


def test_calendar_is_the_documented_one():
    s2 = scenes_between("sentinel-2-l2a", *SEASON_DT)
    assert [s.date for s in s2] == s2_scene_dates(*SEASON_DT)
    assert len(s2) == 24  # 2024-05-04 .. 2024-08-27, one scene every 5 days
    assert {s.platform for s in s2} == {"S2A", "S2B"}
    assert all(b.date - a.date == timedelta(days=5) for a, b in zip(s2, s2[1:]))
    s1 = scenes_between("sentinel-1-grd", *SEASON_DT)
    assert all(b.date - a.date == timedelta(days=6) for a, b in zip(s1, s1[1:]))
    assert len(scenes_between("dem", *SEASON_DT)) == 1


@pytest.mark.parametrize(("order", "pick"), [("mostRecent", -1), ("leastRecent", 0)])
def test_simple_mosaicking_picks_the_scene_by_order(emu, api, s3c, out_bucket, order, pick):
    rid = _run(api, out_bucket, NDVI_SIMPLE, mosaickingOrder=order)
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    lon, lat = _lonlat()
    date = s2_scene_dates(*SEASON_DT)[pick]
    np.testing.assert_allclose(data[0], scene("B04", lon, lat, date), rtol=1e-6)
    np.testing.assert_allclose(data[1], scene("B08", lon, lat, date), rtol=1e-6)


def test_no_scene_in_the_range_is_no_data(emu, api, s3c, out_bucket):
    day = datetime(2024, 6, 1, tzinfo=UTC)
    while s2_scene_dates(day, day + timedelta(hours=23)):
        day += timedelta(days=1)
    rng = (day.strftime("%Y-%m-%dT00:00:00Z"), day.strftime("%Y-%m-%dT23:00:00Z"))
    script = NDVI_SIMPLE.replace('["B04", "B08"]', '["B04", "B08", "dataMask"]').replace(
        "return [s.B04, s.B08]", "return [s.B04 + 1, s.dataMask]"
    )
    rid = _run(api, out_bucket, script, time_range=rng)
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    assert np.all(data[0] == 1) and np.all(data[1] == 0)


def test_orbit_one_band_per_scene_with_userdata(emu, api, s3c, out_bucket):
    rid = _run(api, out_bucket, NDVI_ORBIT, responses=("default", "userdata"))
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket), read_json(
        s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}"
    )
    dates = s2_scene_dates(*SEASON_DT)[::-1]  # most recent first
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert tif["count"] == len(dates) == 24
    lon, lat = _lonlat()
    for band, date in zip(tif["data"], dates, strict=True):
        np.testing.assert_allclose(band, _ndvi(lon, lat, date), rtol=1e-5)
    means = tif["data"].reshape(24, -1).mean(axis=1)[::-1]  # oldest first
    assert means.argmax() not in (0, 23)  # NDVI rises then falls over the season
    user = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")
    assert user["dates"] == [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in dates]
    assert user["orbits"] == 24 and user["factor"] == 0.0001
    copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
    assert copy[COST_FACTORS_FIELD]["samples"] == 24  # the samples factor is the scene count
    # 320 px: area 0.01 * 2 bands/3 * FLOAT32 2 * 24 samples = 0.32 -> the 10 PU minimum
    assert copy[C.REQUEST_COPY_COST_FIELD] == 10.0


def test_pre_process_scenes_filters_and_tile_order(emu, api, s3c, out_bucket):
    script = (
        NDVI_ORBIT.replace("Mosaicking.ORBIT", "Mosaicking.TILE").replace(
            "scenes.orbits.length", "scenes.tiles.length"
        )
        + """
function preProcessScenes(collections) {
  const last = collections.to.getTime() - 31 * 24 * 3600 * 1000;
  collections.scenes.tiles = collections.scenes.tiles.filter(
    (t) => new Date(t.date).getTime() >= last);
  return collections;
}
"""
    )
    rid = _run(
        api, out_bucket, script, responses=("default", "userdata"), mosaickingOrder="leastRecent"
    )
    last = SEASON_DT[1] - timedelta(days=31)
    dates = [d for d in s2_scene_dates(*SEASON_DT) if d >= last]  # oldest first
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert tif["count"] == len(dates) >= 5
    lon, lat = _lonlat()
    np.testing.assert_allclose(tif["data"][0], _ndvi(lon, lat, dates[0]), rtol=1e-5)
    user = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")
    assert user["dates"] == [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in dates]


def test_sentinelhub_py_orbit_request_gets_one_band_per_scene(emu, out_bucket, monkeypatch):
    """sentinelhub-py's AsyncProcessRequest with a multi-temporal (ORBIT) evalscript written
    for the real service, unchanged."""
    pytest.importorskip("sentinelhub", reason="sentinelhub-py is a test extra")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    from sentinelhub import CRS, AsyncProcessRequest, BBox, DataCollection, MimeType, SHConfig

    script = """//VERSION=3
function setup() {
  return {input: [{bands: ["B05"], units: "DN"}],
          output: {id: "S2_L2A", bands: 1, sampleType: SampleType.UINT16},
          mosaicking: Mosaicking.ORBIT};
}
function updateOutput(outputs, collection) {
  Object.values(outputs).forEach((output) => { output.bands = collection.scenes.length; });
}
function evaluatePixel(samples) {
  var n_observations = samples.length;
  let band_05 = new Array(n_observations).fill(0);
  samples.forEach((sample, index) => { band_05[index] = sample.B05; });
  return band_05;
}
"""
    config = SHConfig(
        sh_base_url=emu.base_url,
        sh_token_url=emu.token_url,
        sh_client_id=emu.client_id,
        sh_client_secret=emu.client_secret,
        max_download_attempts=1,
    )
    # api_id: the legacy alias, so that this definition differs from test_sentinelhub_py's
    # (sentinelhub-py refuses two collections with the same definition in one process)
    collection = DataCollection.SENTINEL2_L2A.define_from(
        f"emu-s2-{uuid.uuid4().hex[:8]}", service_url=emu.base_url, api_id="S2L2A"
    )
    request = AsyncProcessRequest(
        evalscript=script,
        input_data=[
            AsyncProcessRequest.input_data(
                data_collection=collection, time_interval=("2024-05-01", "2024-08-31")
            )
        ],
        responses=[AsyncProcessRequest.output_response("S2_L2A", MimeType.TIFF)],
        delivery=AsyncProcessRequest.s3_specification(
            url=f"s3://{out_bucket}/shpy", access_key="k", secret_access_key="s"
        ),
        bbox=BBox(BBOX, crs=CRS.WGS84),
        size=SIZE,
        config=config,
    )
    rid = request.get_data()[0]["id"]
    with httpx.Client(base_url=emu.base_url) as http:
        http.headers["Authorization"] = f"Bearer {get_token(emu)}"
        wait_gone(http, rid, timeout=60)
    tif = read_tif(emu, out_bucket, f"shpy/{rid}/S2_L2A.tif")
    # sentinelhub-py sends the interval as 2024-05-01T00:00:00Z .. 2024-08-31T23:59:59Z
    dates = s2_scene_dates(*SEASON_DT)[::-1]
    assert tif["count"] == len(dates) and tif["dtype"] == "uint16"
    lon, lat = _lonlat()
    np.testing.assert_array_equal(tif["data"][3], scene("B05", lon, lat, dates[3], dn=True))
