"""Delivered GeoTIFFs: grid, CRS, dtype, layout and pixel values match the request exactly."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from emu_helpers import (
    LEGACY,
    centres,
    keys,
    make_body,
    read_json,
    read_tif,
    s2_scene_dates,
    scene,
    wait_gone,
)
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.transform import Affine

from xasync import _contract as C

# SIMPLE mosaicking, mostRecent: the last Sentinel-2 scene of the documented calendar in June
MID_JUNE = s2_scene_dates(
    datetime(2023, 6, 1, tzinfo=timezone.utc),
    datetime(2023, 6, 30, 23, 59, 59, tzinfo=timezone.utc),
)[-1]


def _run(api, body: dict) -> str:
    r = api.post(LEGACY, json=body)
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    wait_gone(api, rid)
    return rid


def _grid(bbox, w, h):
    minx, miny, maxx, maxy = bbox
    return Affine((maxx - minx) / w, 0, minx, 0, -(maxy - miny) / h, maxy)


def test_bbox_only_wgs84_width_height_float32_values(emu, api, out_bucket):
    bbox = (13.0, 45.0, 13.05, 45.04)
    rid = _run(api, make_body(out_bucket, bbox=bbox, size=(40, 32)))
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert (tif["width"], tif["height"], tif["count"]) == (40, 32, 2)
    assert tif["dtype"] == "float32"
    assert tif["crs"] == CRS.from_epsg(4326)
    assert tif["transform"] == _grid(bbox, 40, 32)  # bit for bit
    assert tif["nodata"] is None
    lon, lat = centres(bbox, 40, 32)
    np.testing.assert_allclose(tif["data"][0], scene("B04", lon, lat, MID_JUNE), rtol=1e-6)
    np.testing.assert_allclose(tif["data"][1], scene("B08", lon, lat, MID_JUNE), rtol=1e-6)
    assert not np.allclose(tif["data"][0], tif["data"][1])


AUTO_SCRIPT = """//VERSION=3
function setup() { return {input: ["B03"], output: {bands: 1}}; }
function evaluatePixel(s) { return [12 * s.B03 - 0.5]; }
"""


def test_utm_resolution_auto_uint8_values(emu, api, out_bucket):
    bbox = (399_960.0, 5_000_000.0, 401_235.0, 5_000_905.0)  # 1275 m x 905 m
    rid = _run(
        api,
        make_body(
            out_bucket, bbox=bbox, epsg=32633, res=(10, 10), script=AUTO_SCRIPT, time_range=None
        ),
    )
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    w, h = round(1275 / 10), round(905 / 10)
    assert (tif["width"], tif["height"], tif["count"]) == (w, h, 1)
    assert (w, h) == (128, 90)
    assert tif["transform"] == _grid(bbox, w, h)
    assert tif["crs"] == CRS.from_epsg(32633)
    assert tif["dtype"] == "uint8"
    x, y = centres(bbox, w, h)
    lon, lat = Transformer.from_crs(32633, 4326, always_xy=True).transform(x, y)
    default_date = datetime(2020, 6, 15, tzinfo=timezone.utc)
    v = 12 * scene("B03", lon, lat, default_date) - 0.5
    expected = np.floor(np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(tif["data"][0], expected)
    assert tif["data"][0].min() < 255
    assert tif["data"][0].max() > 0


MULTI_SCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "dataMask"],
          output: [{id: "band", bands: 1, sampleType: "FLOAT32"},
                   {id: "mask", bands: 1, sampleType: "UINT8"}]};
}
function evaluatePixel(s) { return {band: [s.B04], mask: [s.dataMask]}; }
"""


def test_geometry_only_several_responses_outside_is_zero(emu, api, out_bucket, s3c):
    import shapely

    tri = {
        "type": "Polygon",
        "coordinates": [[[13.0, 45.0], [13.06, 45.0], [13.0, 45.05], [13.0, 45.0]]],
    }
    rid = _run(
        api,
        make_body(
            out_bucket,
            bbox=None,
            geometry=tri,
            size=(60, 50),
            script=MULTI_SCRIPT,
            responses=("band", "mask"),
        ),
    )
    assert keys(s3c, out_bucket, f"out/{rid}/") == {
        f"out/{rid}/band.tif",
        f"out/{rid}/mask.tif",
        f"out/{rid}/{C.REQUEST_COPY_FILE}",
    }
    band = read_tif(emu, out_bucket, f"out/{rid}/band.tif")
    mask = read_tif(emu, out_bucket, f"out/{rid}/mask.tif")
    bounds = (13.0, 45.0, 13.06, 45.05)
    for tif in (band, mask):
        assert tif["transform"] == _grid(bounds, 60, 50)
        assert (tif["width"], tif["height"]) == (60, 50)
    assert band["dtype"] == "float32"
    assert mask["dtype"] == "uint8"
    x, y = centres(bounds, 60, 50)
    inside = shapely.intersects_xy(shapely.geometry.shape(tri), x, y)
    assert 0.3 < inside.mean() < 0.7
    np.testing.assert_array_equal(mask["data"][0], inside.astype(np.uint8))
    assert (band["data"][0][~inside] == 0).all()
    np.testing.assert_allclose(
        band["data"][0][inside], scene("B04", x, y, MID_JUNE)[inside], rtol=1e-6
    )


DN_SCRIPT = """//VERSION=3
function setup() {
  return {input: [{bands: ["B02", "B8A"], units: "DN"}],
          output: {bands: 2, sampleType: "UINT16", nodataValue: 0}};
}
function evaluatePixel(s) { return [s.B02, s.B8A + 0.4]; }
"""


def test_dn_units_uint16_and_nodata_tag(emu, api, out_bucket):
    bbox = (13.0, 45.0, 13.02, 45.02)
    rid = _run(api, make_body(out_bucket, bbox=bbox, size=(20, 20), script=DN_SCRIPT))
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert tif["dtype"] == "uint16"
    assert tif["nodata"] == 0
    lon, lat = centres(bbox, 20, 20)
    np.testing.assert_array_equal(tif["data"][0], scene("B02", lon, lat, MID_JUNE, dn=True))
    np.testing.assert_array_equal(tif["data"][1], scene("B8A", lon, lat, MID_JUNE, dn=True))
    assert tif["data"].min() >= 100  # DN, not reflectance


@pytest.mark.parametrize("layout", ["tiled", "striped"])
def test_tiff_layout_knob(emu, api, out_bucket, layout):
    emu.configure(tiff_layout=layout)
    rid = _run(api, make_body(out_bucket, size=(600, 40)))
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    if layout == "tiled":
        assert tif["tiled"]
        assert tif["block_shapes"][0] == (512, 512)
        assert tif["compression"].name.lower() == "deflate"
    else:
        assert not tif["tiled"]
        assert tif["block_shapes"][0][1] == 600
        assert tif["compression"] is None
    assert (tif["width"], tif["height"]) == (600, 40)


def test_url_template(emu, api, out_bucket, s3c):
    body = make_body(out_bucket)
    body["output"]["delivery"]["s3"]["url"] = f"s3://{out_bucket}/t/<REQUEST_ID>/x_<OUTPUT>"
    rid = _run(api, body)
    assert keys(s3c, out_bucket) == {f"t/{rid}/x_default.tif", f"t/{rid}/x_{C.REQUEST_COPY_FILE}"}


def test_js_error_gives_error_json(emu, api, out_bucket, s3c):
    script = """//VERSION=3
function setup() { return {input: ["B04"], output: {bands: 1}}; }
function evaluatePixel(s) { return [s.B04.nope.deeper]; }
"""
    rid = _run(api, make_body(out_bucket, script=script))
    assert keys(s3c, out_bucket, f"out/{rid}/") == {
        f"out/{rid}/{C.ERROR_FILE}",
        f"out/{rid}/{C.REQUEST_COPY_FILE}",
    }
    message = read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert "TypeError" in message
    assert "deeper" in message
    copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
    assert copy["status"] == "FAILED"
    assert C.REQUEST_COPY_COST_FIELD not in copy
    assert emu.stats["failed"] == 1


def test_identifier_missing_from_setup_gives_error_json(emu, api, out_bucket, s3c):
    rid = _run(api, make_body(out_bucket, responses=("default", "ndvi")))
    message = read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert "ndvi" in message
    assert f"out/{rid}/default.tif" not in keys(s3c, out_bucket)


def test_cost_in_request_copy_follows_the_pu_formula(emu, api, out_bucket, s3c):
    # 4 input bands (dataMask not counted), FLOAT32, 100 x 60 px (< 10000 px: no discount):
    # 6000/262144 * 4/3 * 2 = 0.061 -> the 10 PU minimum (larger cases: test_cost.py).
    script = """//VERSION=3
function setup() { return {input: ["B01", "B02", "B03", "B04", "dataMask"],
                           output: {bands: 1, sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [s.B01]; }
"""
    rid = _run(api, make_body(out_bucket, script=script, size=(100, 60)))
    copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
    assert copy[C.REQUEST_COPY_COST_FIELD] == 10.0
    assert emu.stats["processing_units"] == 10.0


def test_unwritable_bucket_fails_the_request(emu, api, out_bucket, s3c):
    emu.configure(processing_seconds=0.6)
    with emu.hold():  # nothing is delivered before the bucket is gone, however slow the machine
        rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
        for key in keys(s3c, out_bucket):
            s3c.delete_object(Bucket=out_bucket, Key=key)
        s3c.delete_bucket(Bucket=out_bucket)
    wait_gone(api, rid)
    stats = emu.stats
    assert stats["failed"] == 1
    assert stats["succeeded"] == 0


def test_default_crs_is_crs84(emu, api, out_bucket):
    body = make_body(out_bucket, size=(10, 8))
    del body["input"]["bounds"]["properties"]
    rid = _run(api, body)
    tif = read_tif(emu, out_bucket, f"out/{rid}/default.tif")
    assert tif["crs"] == CRS.from_epsg(4326)
    assert tif["transform"] == _grid((13.0, 45.0, 13.05, 45.04), 10, 8)
