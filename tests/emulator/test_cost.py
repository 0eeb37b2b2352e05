"""The PU rules (xasync/emulator/cost.py) on hand-computed figures, and the cost written into the
request copy over HTTP."""

from __future__ import annotations

import pytest
from emu_helpers import LEGACY, make_body, read_json, wait_gone

from xasync import _contract as C
from xasync.emulator.cost import cost_factors, processing_units
from xasync.emulator.jsrun import OutputDecl, Setup
from xasync.emulator.process import COST_FACTORS_FIELD, compute_cost
from xasync.emulator.validate import parse_body

S1 = {"type": "sentinel-1-grd"}
S2 = {"type": "sentinel-2-l2a"}


# Each figure computed by hand: area = w*h/262144, bands/3, x2 FLOAT32, x fusion, x S1, x2/3 when
# w*h >= 10000, then at least 10.
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # 1000 x 1000, 3 bands: 3.8147 * 1 * 2/3 = 2.543 -> the minimum
        ({"width": 1000, "height": 1000, "bands": ["B02", "B03", "B04"]}, 10.0),
        # 2500 x 2500, 4 bands + dataMask, FLOAT32: 23.8419 * 4/3 * 2 * 2/3 = 42.3855
        (
            {
                "width": 2500,
                "height": 2500,
                "bands": ["B02", "B03", "B04", "B08", "dataMask"],
                "float32_tiff": True,
            },
            42.3855,
        ),
        # 10000 x 10000, dataMask alone counts as 1 band: 381.4697 / 3 * 2/3 = 84.7711
        ({"width": 10000, "height": 10000, "bands": ["dataMask"]}, 84.7711),
        # 10000 x 10000, 3 bands: 381.4697 * 2/3 = 254.3132
        ({"width": 10000, "height": 10000, "bands": ["B02", "B03", "B04"]}, 254.3132),
        # 99 x 100 = 9900 px (< 10000: no 2/3), tiny -> the minimum
        ({"width": 99, "height": 100, "bands": ["B04"]}, 10.0),
        # 5000 x 5000 S1 VV+VH, RTC (2.5, replaces ortho) + Lee (2): 95.3674 * 2/3 * 5 * 2/3
        # = 211.9276
        (
            {
                "width": 5000,
                "height": 5000,
                "bands": ["VV", "VH"],
                "data": [
                    {
                        **S1,
                        "processing": {
                            "orthorectify": True,
                            "backCoeff": "GAMMA0_TERRAIN",
                            "speckleFilter": {"type": "LEE", "windowSizeX": 3, "windowSizeY": 3},
                        },
                    }
                ],
            },
            211.9276,
        ),
        # 5000 x 5000 S1 VV, orthorectified only: 95.3674 / 3 * 2 * 2/3 = 42.3855
        (
            {
                "width": 5000,
                "height": 5000,
                "bands": ["VV"],
                "data": [{**S1, "processing": {"orthorectify": True}}],
            },
            42.3855,
        ),
        # fusion S2 + S1, 3000 x 3000, B04 B08 VV: 34.3323 * 1 * 2 * 2/3 = 45.7764
        (
            {"width": 3000, "height": 3000, "bands": ["B04", "B08", "VV"], "data": [S2, S1]},
            45.7764,
        ),
        # ORBIT with 4 samples, 2000 x 2000, 6 bands: 15.2588 * 2 * 4 * 2/3 = 81.3802
        ({"width": 2000, "height": 2000, "bands": list("ABCDEF"), "samples": 4}, 81.3802),
    ],
)
def test_hand_computed_costs(kwargs, expected):
    assert processing_units(**kwargs) == pytest.approx(expected, abs=1e-4)


def test_area_factor_minimum():
    f = cost_factors(10, 10, ["B04"])
    assert f.area == 0.01  # 100 / 262144 = 0.00038 -> 0.01
    assert f.async_discount == 1.0


def _parsed(w: int, h: int, out_id: str = "default"):
    return parse_body(
        {
            "input": {"bounds": {"bbox": [0, 0, 1, 1]}, "data": [{"type": "S2L2A"}]},
            "output": {
                "width": w,
                "height": h,
                "responses": [{"identifier": out_id, "format": {"type": "image/tiff"}}],
                "delivery": {"s3": {"url": "s3://bkt/p", "iamRoleARN": "arn:x"}},
            },
            "evalscript": "x",
        }
    )


def _setup(bands: list[str], sample_type: str = "UINT8") -> Setup:
    return Setup(
        tuple((b, None) for b in bands), (OutputDecl("default", 1, sample_type, None),), "SIMPLE"
    )


def test_float32_output_not_requested_does_not_double():
    setup = _setup(["B02", "B03", "B04"], "FLOAT32")
    assert compute_cost(setup, _parsed(10000, 10000, out_id="other")).total() == pytest.approx(
        1e8 / 262144 * 2 / 3
    )
    assert compute_cost(setup, _parsed(10000, 10000)).total() == pytest.approx(
        1e8 / 262144 * 2 * 2 / 3
    )


def test_cost_written_into_the_request_copy(emu, api, s3c, out_bucket):
    bands = ", ".join(
        f'"{b}"'
        for b in [
            "B01",
            "B02",
            "B03",
            "B04",
            "B05",
            "B06",
            "B07",
            "B08",
            "B8A",
            "B09",
            "B10",
            "B11",
            "B12",
        ]
    )
    script = (
        "//VERSION=3\nfunction setup() { return {input: [" + bands + ', "dataMask"],\n'
        '  output: [{id: "a", bands: 1, sampleType: "FLOAT32"}, {id: "b", bands: 1}]}; }\n'
        "function evaluatePixel(s) { return {a: [s.B04], b: [s.B08]}; }\n"
    )
    body = make_body(out_bucket, script=script, size=(800, 600), responses=("a", "b"))
    body["input"]["data"][0]["type"] = "sentinel-2-l1c"
    rid = api.post(LEGACY, json=body).json()["id"]
    wait_gone(api, rid, timeout=120)
    copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
    # 480000/262144 = 1.83105 * 13/3 * 2 (one FLOAT32 TIFF among the outputs) * 2/3 = 10.5794
    assert copy[C.REQUEST_COPY_COST_FIELD] == pytest.approx(10.5794, abs=1e-4)
    assert copy[COST_FACTORS_FIELD]["output_format"] == 2.0
    assert emu.stats["processing_units"] == pytest.approx(10.5794, abs=1e-4)
