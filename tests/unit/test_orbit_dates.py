"""The ORBIT wrapper dates each orbit by its documented ``dateFrom``/``dateTo`` (issue 14).

The service's Evalscript V3 docs describe ``scenes.orbits[i]`` as ``{dateFrom, dateTo, tiles}``
and its examples read ``scenes.orbits[i].dateFrom``; ``tiles`` may be absent or empty. The wrapped
script runs in QuickJS here with such hand-made scenes.
"""

from __future__ import annotations

import json

import pytest

from xasync.evalscript import parse_outputs
from xasync.temporal import make_intervals, wrap_evalscript

SCRIPT = """//VERSION=3
function setup() { return {input: ["B04"], output: {bands: 1, sampleType: "FLOAT32"}}; }
function evaluatePixel(s) { return [s.B04]; }
"""


def _run(intervals, orbits, values, reducer="count"):
    import quickjs

    from xasync.evalscript import _PRELUDE

    script = wrap_evalscript(SCRIPT, parse_outputs(SCRIPT), intervals, reducer)
    ctx = quickjs.Context()
    ctx.eval(_PRELUDE)
    ctx.eval(script)
    ctx.eval(f"var __sc = {{orbits: {json.dumps(orbits)}}};")
    samples = [{"B04": v, "dataMask": 1} for v in values]
    pixel = json.loads(
        ctx.eval(f"JSON.stringify(evaluatePixel({json.dumps(samples)}, __sc, {{}}, {{}}, {{}}))")
    )
    meta = json.loads(
        ctx.eval("var __m = {}; updateOutputMetadata(__sc, {}, __m); JSON.stringify(__m.userData)")
    )
    return pixel["default"], [iv["scenes"] for iv in meta["intervals"]]


def _day(day: str, tile: str | None = None) -> dict:
    orbit = {"dateFrom": f"{day}T00:00:00Z", "dateTo": f"{day}T23:59:59Z"}
    orbit["tiles"] = [] if tile is None else [{"date": tile}]
    return orbit


TEN_DAYS = make_intervals(("2024-05-01", "2024-05-30"), "10D")  # 05-01, 05-11, 05-21


def test_orbits_without_tiles_are_dated_by_date_from():
    orbits = [_day("2024-05-14"), _day("2024-05-04"), _day("2024-05-25")]
    counts, listed = _run(TEN_DAYS, orbits, [0.1, 0.2, 0.3])
    assert counts == [1, 1, 1]
    assert listed == [["2024-05-04T00:00:00Z"], ["2024-05-14T00:00:00Z"], ["2024-05-25T00:00:00Z"]]


def test_the_orbit_day_wins_over_a_tile_date_of_another_interval():
    # the orbit of 05-10 (interval 0) whose tile says 05-11 (interval 1): the documented day
    counts, _ = _run(TEN_DAYS, [_day("2024-05-10", "2024-05-11T00:30:00Z")], [0.5])
    assert counts == [1, 0, 0]


@pytest.mark.parametrize(("tile", "expected"), [("10:00", [1, 0]), ("14:00", [0, 1])])
def test_a_day_straddling_a_boundary_goes_by_its_acquisition_time(tile, expected):
    intervals = make_intervals(
        None, [("2024-05-01", "2024-05-10T11:59:59Z"), ("2024-05-10T12:00:00Z", "2024-05-20")]
    )
    counts, listed = _run(intervals, [_day("2024-05-10", f"2024-05-10T{tile}:00Z")], [0.5])
    assert counts == expected
    assert listed[expected.index(1)] == [f"2024-05-10T{tile}:00Z"]


def test_last_orders_by_acquisition_time():
    orbits = [
        _day("2024-05-08", "2024-05-08T10:00:00Z"),
        _day("2024-05-03", "2024-05-03T10:00:00Z"),
    ]
    values, _ = _run(TEN_DAYS, orbits, [0.8, 0.3], reducer="last")
    assert values[0] == pytest.approx(0.8)
