"""Validation as the service answers it (issue 12 item 3): dataFilter, processing, formats at
create (400 naming the field); evalscript bands per collection while processing (error.json)."""

from __future__ import annotations

import pytest
from emu_helpers import LEGACY, keys, make_body, read_json, wait_gone

from xasync import _contract as C
from xasync.emulator.catalog import BANDS


def _body(bucket, dtype="sentinel-2-l2a", data_filter=None, processing=None, script=None):
    body = make_body(bucket) if script is None else make_body(bucket, script=script)
    item = body["input"]["data"][0]
    item["type"] = dtype
    item.setdefault("dataFilter", {}).update(data_filter or {})
    if processing is not None:
        item["processing"] = processing
    return body


F = "input.data[0].dataFilter."
P = "input.data[0].processing."
CREATE_CASES = {
    "cloud cover a word": (
        "sentinel-2-l2a",
        {"maxCloudCoverage": "lots"},
        None,
        F + "maxCloudCoverage",
    ),
    "cloud cover 150": ("sentinel-2-l1c", {"maxCloudCoverage": 150}, None, F + "maxCloudCoverage"),
    "bogus order": ("sentinel-2-l2a", {"mosaickingOrder": "bogus"}, None, F + "mosaickingOrder"),
    "leastCC on S1": (
        "sentinel-1-grd",
        {"mosaickingOrder": "leastCC"},
        None,
        F + "mosaickingOrder",
    ),
    "S1 mode": ("sentinel-1-grd", {"acquisitionMode": "XX"}, None, F + "acquisitionMode"),
    "S1 polarization": ("sentinel-1-grd", {"polarization": "VVV"}, None, F + "polarization"),
    "S1 orbit": ("sentinel-1-grd", {"orbitDirection": "UP"}, None, F + "orbitDirection"),
    "S1 resolution": ("sentinel-1-grd", {"resolution": "LOW"}, None, F + "resolution"),
    "landsat tier": ("landsat-ot-l2", {"tiers": "TIER_1_AND_RT"}, None, F + "tiers"),
    "dem instance": ("dem", {"demInstance": "SRTM"}, None, F + "demInstance"),
    "upsampling": ("sentinel-2-l2a", None, {"upsampling": "CUBIC"}, P + "upsampling"),
    "downsampling": ("dem", None, {"downsampling": 1}, P + "downsampling"),
    "harmonize": ("sentinel-2-l2a", None, {"harmonizeValues": "yes"}, P + "harmonizeValues"),
    "backCoeff": ("sentinel-1-grd", None, {"backCoeff": "GAMMA1"}, P + "backCoeff"),
    "orthorectify": ("sentinel-1-grd", None, {"orthorectify": "true"}, P + "orthorectify"),
    "S1 dem": ("sentinel-1-grd", None, {"demInstance": "SRTM"}, P + "demInstance"),
    "speckle window": (
        "sentinel-1-grd",
        None,
        {"speckleFilter": {"type": "LEE", "windowSizeX": 9, "windowSizeY": 3}},
        P + "speckleFilter.windowSizeX",
    ),
    "speckle type": (
        "sentinel-1-grd",
        None,
        {"speckleFilter": {"type": "X"}},
        P + "speckleFilter.type",
    ),
    "oversampling": (
        "sentinel-1-grd",
        None,
        {"radiometricTerrainOversampling": 5},
        P + "radiometricTerrainOversampling",
    ),
    "dem egm": ("dem", None, {"egm": 1}, P + "egm"),
    "filter not an object": ("sentinel-2-l2a", None, "x", "input.data[0].processing"),
}


@pytest.mark.parametrize("case", sorted(CREATE_CASES))
def test_refused_at_create_naming_the_field(emu, api, out_bucket, case):
    dtype, data_filter, processing, field = CREATE_CASES[case]
    r = api.post(LEGACY, json=_body(out_bucket, dtype, data_filter, processing))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err == {
        "status": 400,
        "reason": "Bad Request",
        "message": err["message"],
        "code": "COMMON_BAD_PAYLOAD",
    }
    assert err["message"].startswith(field + ":"), err["message"]
    assert emu.stats["creates"] == 0


def test_jpeg_quality_out_of_range(api, out_bucket):
    body = make_body(out_bucket)
    body["output"]["responses"][0]["format"] = {"type": "image/jpeg", "quality": 200}
    r = api.post(LEGACY, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("output.responses[0].format.quality")


S1_SCRIPT = """//VERSION=3
function setup() { return {input: ["VV", "VH", "dataMask"], output: {bands: 2, sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [s.VV, s.VH]; }
"""


def test_valid_options_are_accepted_and_processed(emu, api, s3c, out_bucket):
    s1 = _body(
        out_bucket,
        "sentinel-1-grd",
        {
            "mosaickingOrder": "leastRecent",
            "acquisitionMode": "IW",
            "polarization": "DV",
            "resolution": "HIGH",
            "orbitDirection": "ASCENDING",
            "timeliness": "NRT3h",
        },
        {
            "backCoeff": "GAMMA0_TERRAIN",
            "orthorectify": True,
            "demInstance": "COPERNICUS_30",
            "speckleFilter": {"type": "LEE", "windowSizeX": 3, "windowSizeY": 3},
            "upsampling": "BILINEAR",
        },
        script=S1_SCRIPT,
    )
    s2 = _body(out_bucket, "S2L2A", {"maxCloudCoverage": 30.5, "mosaickingOrder": "leastCC"})
    s2["output"]["responses"][0]["format"] = {"type": "image/tiff"}
    for body in (s1, s2):
        r = api.post(LEGACY, json=body)
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        wait_gone(api, rid)
        assert f"out/{rid}/default.tif" in keys(s3c, out_bucket), read_json(
            s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}"
        )


def _script(bands: list[str]) -> str:
    names = ", ".join(f'"{b}"' for b in bands)
    return (
        "//VERSION=3\nfunction setup() { return {input: [" + names + "], output: {bands: 1}}; }\n"
        "function evaluatePixel(s) { return [0.5]; }\n"
    )


@pytest.mark.parametrize(
    ("dtype", "bands", "bad"),
    [
        ("sentinel-2-l2a", ["B04", "B99"], "B99"),
        ("sentinel-1-grd", ["B04", "dataMask"], "B04"),
        ("sentinel-2-l2a", ["B10"], "B10"),  # cirrus exists only in L1C
        ("landsat-ot-l2", ["B08"], "B08"),  # no panchromatic band in L2
        ("dem", ["DEM", "VV"], "VV"),
    ],
)
def test_unknown_bands_fail_while_processing(emu, api, s3c, out_bucket, dtype, bands, bad):
    r = api.post(LEGACY, json=_body(out_bucket, dtype, script=_script(bands)))
    assert r.status_code == 200, r.text  # setup() runs at processing time on the service
    rid = r.json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" not in keys(s3c, out_bucket)
    message = read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert bad in message and dtype in message and message.startswith("setup().input")
    assert emu.stats["failed"] == 1


@pytest.mark.parametrize(
    ("dtype", "bands"),
    [
        ("sentinel-2-l1c", ["B10", "B8A", "dataMask"]),
        ("S2L2A", ["SCL", "CLP", "AOT"]),
        ("landsat-ot-l1", ["B08", "BQA"]),
        ("landsat-ot-l2", ["B10", "ST_TRAD"]),
        ("dem", ["DEM"]),
        ("sentinel-1-grd", ["HH", "HV", "localIncidenceAngle"]),
    ],
)
def test_known_bands_are_processed(emu, api, s3c, out_bucket, dtype, bands):
    assert set(bands) <= BANDS.get(dtype, BANDS["sentinel-2-l2a"])
    rid = api.post(LEGACY, json=_body(out_bucket, dtype, script=_script(bands))).json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket)
