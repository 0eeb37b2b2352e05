"""The PU formula of spec section 11 on hand-computed cases (a pure function)."""

from __future__ import annotations

import pytest

from xasync.emulator.jsrun import OutputDecl, Setup
from xasync.emulator.process import compute_cost
from xasync.emulator.validate import parse_body


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


@pytest.mark.parametrize(
    ("w", "h", "bands", "stype", "expected"),
    [
        (10000, 10000, ["B02", "B03", "B04"], "UINT8", 1e8 / 262144 * 2 / 3),  # 254.31
        (10000, 10000, ["B02", "B03", "B04", "dataMask"], "FLOAT32", 1e8 / 262144 * 2 * 2 / 3),
        (5000, 5000, ["B04", "B08"], "UINT16", 25e6 / 262144 * (2 / 3) * 2 / 3),
        (99, 100, ["B04"], "UINT8", 10.0),  # tiny: the minimum
        (2000, 2000, ["dataMask"], "UINT8", 4e6 / 262144 / 3 * 2 / 3),  # dataMask alone counts
    ],
)
def test_cost(w, h, bands, stype, expected):
    cost = compute_cost(_setup(bands, stype), _parsed(w, h))
    assert cost == pytest.approx(max(10.0, expected))
    if expected > 10:
        assert cost > 10


def test_float32_output_not_requested_does_not_double():
    setup = _setup(["B02", "B03", "B04"], "FLOAT32")
    assert compute_cost(setup, _parsed(10000, 10000, out_id="other")) == pytest.approx(
        1e8 / 262144 * 2 / 3
    )
