"""A scene with texture (issue 12 item 4): NDVI varies inside a field, neighbours differ, and a
window shifted by one pixel is caught."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from emu_helpers import LEGACY, centres, make_body, read_tif, s2_scene_dates, surface, wait_gone

NDVI_SCRIPT = """//VERSION=3
function setup() { return {input: ["B04", "B08", "dataMask"], output: {bands: 1, sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }
"""
UTM = 32633
X0, Y0 = 400_000.0, 5_000_000.0


def _ndvi(emu, api, bucket, bbox, size):
    body = make_body(bucket, script=NDVI_SCRIPT, bbox=bbox, epsg=UTM, size=size)
    rid = api.post(LEGACY, json=body).json()["id"]
    wait_gone(api, rid)
    return read_tif(emu, bucket, f"out/{rid}/default.tif")["data"][0].astype(float)


@pytest.mark.xasync_emulator(clouds=False)  # the texture of the ground, not of the clouds
def test_ndvi_varies_inside_fields_and_between_neighbours(emu, api, out_bucket):
    from pyproj import Transformer

    bbox = (X0, Y0, X0 + 2000, Y0 + 2000)
    ndvi = _ndvi(emu, api, out_bucket, bbox, (200, 200))  # 10 m pixels
    xx, yy = centres(bbox, 200, 200)
    lon, lat = Transformer.from_crs(UTM, 4326, always_xy=True).transform(xx, yy)
    june = (
        datetime(2023, 6, 1, tzinfo=timezone.utc),
        datetime(2023, 6, 30, 23, 59, 59, tzinfo=timezone.utc),
    )
    s = surface(lon, lat, s2_scene_dates(*june)[-1])
    vegetation = ~s["water"] & ~s["soil"]
    checked = 0
    for field in np.unique(s["field"][vegetation]):
        inside = (s["field"] == field) & vegetation
        if inside.sum() < 900:  # whole fields (400 x 300 m: 1200 px) or large parts
            continue
        checked += 1
        assert ndvi[inside].std() > 0.01  # was ~3e-4 with the old scene
        assert 0.3 < ndvi[inside].mean() < 0.9
    assert checked >= 2
    if s["water"].any():
        assert ndvi[s["water"]].max() < 0
    assert np.mean(ndvi[:, 1:] == ndvi[:, :-1]) < 0.01  # neighbours differ
    assert np.mean(ndvi[1:, :] == ndvi[:-1, :]) < 0.01


def test_a_window_shifted_by_one_pixel_is_caught(emu, api, out_bucket):
    bbox = (X0, Y0, X0 + 500, Y0 + 500)
    shifted = (X0 + 10, Y0, X0 + 510, Y0 + 500)
    a = _ndvi(emu, api, out_bucket, bbox, (50, 50))
    b = _ndvi(emu, api, out_bucket, shifted, (50, 50))
    np.testing.assert_allclose(a[:, 1:], b[:, :-1], rtol=1e-6)  # same ground, same values
    assert np.mean(np.isclose(a, b, rtol=1e-6, atol=0)) < 0.01  # misplaced: values differ
