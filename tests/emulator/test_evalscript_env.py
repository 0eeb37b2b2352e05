"""The evalscript globals of the service (issue 12 item 2) and the version line, over HTTP."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from emu_helpers import LEGACY, keys, make_body, read_json, read_tif, wait_gone

from xasync import _contract as C

GLOBALS_SCRIPT = """//VERSION=3
const ramp = new ColorRampVisualizer([[0, 0x000000], [1, [1, 1, 1]]]);
const map = ColorMapVisualizer.createDefaultColorMap();
function setup() {
  console.log("setup called", {bands: 2});
  return {
    input: [{bands: ["B04", "B08"], units: "REFLECTANCE"}],
    output: [{id: "default", bands: 6, sampleType: SampleType.FLOAT32}],
    mosaicking: Mosaicking.SIMPLE,
  };
}
function evaluatePixel(s) {
  console.warn("pixel", s.B04);
  const n = index(s.B08, s.B04);
  return [n, colorBlend(n, [0, 1], [0, 10]), valueInterpolate(n, [0, 1], [5, 7]),
          ramp.process(n)[0], map.process(n)[1],
          [SampleType.UINT16, Mosaicking.ORBIT].join("-") === "UINT16-ORBIT" ? 1 : 0];
}
"""


def test_service_globals_run_and_console_goes_to_logging(emu, api, s3c, out_bucket, caplog, capsys):
    caplog.set_level(logging.INFO, logger="xasync.emulator.evalscript")
    rid = api.post(LEGACY, json=make_body(out_bucket, script=GLOBALS_SCRIPT)).json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket), read_json(
        s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}"
    )
    data = read_tif(emu, out_bucket, f"out/{rid}/default.tif")["data"].astype(float)
    n = data[0]
    assert n.min() < 0.3 < 0.6 < n.max()  # the scene has water or soil and vegetation here
    c = np.clip(n, 0, 1)  # colorBlend & co. clamp to the end stops
    np.testing.assert_allclose(data[1], 10 * c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data[2], 5 + 2 * c, rtol=1e-5)
    np.testing.assert_allclose(data[3], c, rtol=1e-5, atol=1e-6)
    # default colour map: green channel of the class the NDVI falls in (0.8 <= n: 0x33cc33)
    stops = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    greens = [0x66, 0xCC, 0xFF, 0x66, 0xCC, 0xFF, 0x66, 0xCC, 0xFF]
    expected_g = np.select([n >= s for s in stops], greens, 0)
    np.testing.assert_allclose(data[4], expected_g / 255, rtol=1e-5)
    assert np.all(data[5] == 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "xasync.emulator.evalscript"]
    assert any('setup called {"bands":2}' in m and rid in m for m in messages)
    warns = [r for r in caplog.records if "pixel" in r.getMessage()]
    assert warns and all(r.levelno == logging.WARNING for r in warns)
    assert len(warns) <= 100  # bounded per request, 40 x 32 pixels called it
    out = capsys.readouterr()
    assert "setup called" not in out.out and "pixel" not in out.out


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [("", "//VERSION=3"), ("//VERSION=2", "V3"), ("// just a comment", "//VERSION=3")],
)
def test_script_without_version_3_fails_while_processing(
    emu, api, s3c, out_bucket, first_line, expected
):
    script = GLOBALS_SCRIPT.replace("//VERSION=3", first_line)
    r = api.post(LEGACY, json=make_body(out_bucket, script=script))
    assert r.status_code == 200  # the service checks it while processing, not at create
    rid = r.json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" not in keys(s3c, out_bucket)
    message = read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert expected in message


def test_version_line_may_follow_blank_lines_and_use_spaces(emu, api, s3c, out_bucket):
    script = "\n\n  // VERSION = 3\n" + GLOBALS_SCRIPT.split("\n", 1)[1]
    rid = api.post(LEGACY, json=make_body(out_bucket, script=script)).json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket)
