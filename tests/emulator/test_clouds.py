"""Deterministic clouds (issue 14 item 3): the documented model of docs/emulator.md, predicted
pixel for pixel by a re-implementation (emu_helpers), with CLM/CLP/SCL, cloudCoverage per
scene, maxCloudCoverage and leastCC, and the clouds=False knob."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from emu_helpers import (
    LEGACY,
    centres,
    cloud_coverage,
    make_body,
    read_json,
    read_tif,
    s2_scene_dates,
    scene,
    sky,
    surface,
    wait_gone,
)

UTC = timezone.utc
BBOX = (13.0, 45.0, 13.2, 45.15)  # ~16 x 17 km: several cloud patches
SIZE = (64, 48)
SUMMER = (datetime(2023, 5, 1, tzinfo=UTC), datetime(2023, 8, 31, 23, 59, 59, tzinfo=UTC))
CENTRE = ((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2)

BANDS_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B04", "B08", "CLM", "CLP", "SCL", "dataMask"]}],
          output: {bands: 7, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [s.B02, s.B04, s.B08, s.CLM, s.CLP, s.SCL, s.dataMask]; }
"""

CC_SCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "dataMask"], output: {bands: 1, sampleType: "FLOAT32"},
          mosaicking: "TILE"};
}
function updateOutput(outputs, collection) { outputs.default.bands = collection.scenes.length; }
function evaluatePixel(samples) { return samples.map((s) => s.B04); }
function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {tiles: scenes.tiles.map((t) => [t.date, t.cloudCoverage])};
}
"""


def _iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(api, bucket, script, time_range, collection="sentinel-2-l2a", **data_filter):
    body = make_body(bucket, script=script, bbox=BBOX, size=SIZE, time_range=time_range)
    body["input"]["data"][0]["type"] = collection
    body["input"]["data"][0]["dataFilter"].update(data_filter)
    body["output"]["responses"] = [
        {"identifier": r, "format": {"type": t}}
        for r, t in (("default", "image/tiff"), ("userdata", "application/json"))
    ]
    r = api.post(LEGACY, json=body)
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    wait_gone(api, rid, timeout=60)
    return rid


def _one_day(d: datetime) -> tuple[str, str]:
    return _iso(d.replace(hour=0, minute=0)), _iso(d.replace(hour=23, minute=59))


def _partly_cloudy_date(lon, lat) -> datetime:
    """A summer scene whose clouds cover 20-80 % of the bbox (the documented model)."""
    for d in s2_scene_dates(*SUMMER):
        a, _ = sky(lon, lat, d)
        if 0.2 < np.mean(a >= 0.4) < 0.8:
            return d
    raise AssertionError("no partly cloudy scene in the summer of 2023")  # pragma: no cover


def test_cloudy_scene_matches_the_documented_model(emu, api, s3c, out_bucket):
    lon, lat = centres(BBOX, *SIZE)
    day = _partly_cloudy_date(lon, lat)
    rid = _run(api, out_bucket, BANDS_SCRIPT, _one_day(day))
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    a, shadow = sky(lon, lat, day)
    cloud = a >= 0.4
    for i, band in enumerate(("B02", "B04", "B08")):
        np.testing.assert_allclose(data[i], scene(band, lon, lat, day), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(data[3], cloud.astype(float))  # CLM
    np.testing.assert_array_equal(data[4], np.floor(255 * a + 0.5))  # CLP
    s = surface(lon, lat, day)
    scl = np.select(
        [a >= 0.8, a >= 0.4, a > 0, shadow >= 0.4, s["water"], s["soil"]],
        [9, 8, 10, 3, 6, 5],
        4,
    )
    np.testing.assert_array_equal(data[5], scl)
    assert np.all(data[6] == 1)  # dataMask stays 1 under clouds, as on the service
    # under thick clouds: bright and flat in the visible, NDVI near 0
    thick = a >= 0.999
    assert thick.sum() > 10
    assert np.all((data[0][thick] > 0.3) & (data[0][thick] < 0.6))
    ndvi = (data[2] - data[1]) / (data[2] + data[1])
    assert np.all(np.abs(ndvi[thick]) < 0.05)
    clear_b04 = scene("B04", lon, lat, day, clouds=False)
    assert not np.allclose(data[1][cloud], clear_b04[cloud])  # the clouds are really there


def test_cloud_coverage_per_scene_and_max_cloud_coverage(emu, api, s3c, out_bucket):
    rng = (_iso(SUMMER[0]), _iso(SUMMER[1]))
    dates = s2_scene_dates(*SUMMER)
    expected = {_iso(d): cloud_coverage(*CENTRE, d) for d in dates}
    assert 0 < sum(v == 0 for v in expected.values()) < len(dates)  # clear and cloudy scenes
    rid = _run(api, out_bucket, CC_SCRIPT, rng)
    tiles = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")["tiles"]
    assert {t: cc for t, cc in tiles} == pytest.approx(expected)
    limit = 30
    rid = _run(api, out_bucket, CC_SCRIPT, rng, maxCloudCoverage=limit)
    kept = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")["tiles"]
    assert sorted(t for t, _ in kept) == sorted(t for t, v in expected.items() if v <= limit)
    assert len(kept) < len(dates)
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert tif["count"] == len(kept)  # one band per scene left


def test_least_cc_picks_the_least_cloudy_scene(emu, api, s3c, out_bucket):
    june = (datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, 23, 59, tzinfo=UTC))
    dates = s2_scene_dates(*june)
    cover = [cloud_coverage(*CENTRE, d) for d in dates]
    best = min(range(len(dates)), key=lambda i: (cover[i], -i))  # least CC, most recent of equals
    script = BANDS_SCRIPT.replace('"CLM", "CLP", "SCL", ', "").replace("bands: 7", "bands: 4")
    script = script.replace("s.CLM, s.CLP, s.SCL, ", "")
    rid = _run(api, out_bucket, script, (_iso(june[0]), _iso(june[1])), mosaickingOrder="leastCC")
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    lon, lat = centres(BBOX, *SIZE)
    np.testing.assert_allclose(data[1], scene("B04", lon, lat, dates[best]), rtol=1e-5, atol=1e-6)
    assert best != len(dates) - 1  # leastCC is not mostRecent here: the test tells them apart


@pytest.mark.xasync_emulator(clouds=False)
def test_clouds_false_gives_clear_skies(emu, api, s3c, out_bucket):
    lon, lat = centres(BBOX, *SIZE)
    day = _partly_cloudy_date(lon, lat)
    rid = _run(api, out_bucket, BANDS_SCRIPT, _one_day(day))
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    np.testing.assert_allclose(data[1], scene("B04", lon, lat, day, clouds=False), rtol=1e-5)
    assert np.all(data[3] == 0) and np.all(data[4] == 0)
    rid = _run(api, out_bucket, CC_SCRIPT, _one_day(day))
    tiles = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")["tiles"]
    assert [cc for _, cc in tiles] == [0]


def test_radar_has_no_clouds_and_l1c_offers_clm(emu, api, s3c, out_bucket):
    lon, lat = centres(BBOX, *SIZE)
    day = _partly_cloudy_date(lon, lat)
    script = """//VERSION=3
function setup() { return {input: ["CLM", "CLP", "dataMask"], output: {bands: 2,
                   sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [s.CLM, s.CLP]; }
"""
    rid = _run(api, out_bucket, script, _one_day(day), collection="sentinel-2-l1c")
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"]
    a, _ = sky(lon, lat, day)
    np.testing.assert_array_equal(data[0], (a >= 0.4).astype(float))
    s1 = CC_SCRIPT.replace('"B04"', '"VV"').replace("s.B04", "s.VV")
    rid = _run(
        api,
        out_bucket,
        s1,
        ("2023-06-01T00:00:00Z", "2023-06-30T23:59:59Z"),
        collection="sentinel-1-grd",
    )
    tiles = read_json(s3c, out_bucket, f"out/{rid}/userdata.json")["tiles"]
    assert tiles and all(cc == 0 for _, cc in tiles)
