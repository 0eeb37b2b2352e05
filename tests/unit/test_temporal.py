"""xasync.temporal: intervals from freq=, typed errors, the wrapper's checks and layout.

The wrapper's values are checked against the emulator in tests/integration/test_time_series.py;
here the wrapped script is run in QuickJS with hand-made scenes to pin the reducers' edge cases.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from xasync.errors import ValidationError, XasyncError
from xasync.evalscript import parse_outputs
from xasync.temporal import (
    MAX_INTERVALS,
    TemporalError,
    check_options,
    check_wrappable,
    make_intervals,
    scene_counts,
    span,
    wrap_evalscript,
    wrapped_outputs,
)

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }
"""


def test_acceptance_10d_over_the_season_is_13_date_range_steps():
    steps = make_intervals(("2024-05-01", "2024-08-31"), "10D")
    expected = pd.date_range("2024-05-01", "2024-08-31", freq="10D")
    assert len(steps) == 13 == len(expected)
    assert [s.start for s in steps] == list(expected)
    # each ends where the next starts, the last at the end of the range (a date = its whole day)
    assert [s.end for s in steps[:-1]] == list(expected[1:])
    assert steps[-1].end == pd.Timestamp("2024-08-31T23:59:59")
    assert [s.closed for s in steps] == [False] * 12 + [True]
    assert span(steps) == ("2024-05-01T00:00:00Z", "2024-08-31T23:59:59Z")


@pytest.mark.parametrize(
    "time",
    [
        ("2024-05-01", "2024-08-31"),
        (dt.date(2024, 5, 1), dt.date(2024, 8, 31)),
        (pd.Timestamp("2024-05-01"), "2024-08-31T23:59:59Z"),
        (np.datetime64("2024-05-01"), dt.datetime(2024, 8, 31, 23, 59, 59)),
    ],
)
def test_time_types(time):
    steps = make_intervals(time, "10D")
    assert len(steps) == 13 and steps[0].start == pd.Timestamp("2024-05-01")


def test_request_time_ranges_do_not_overlap():
    steps = make_intervals(("2024-05-01", "2024-05-31"), "10D")
    assert [s.time_range for s in steps] == [
        ("2024-05-01T00:00:00Z", "2024-05-10T23:59:59Z"),
        ("2024-05-11T00:00:00Z", "2024-05-20T23:59:59Z"),
        ("2024-05-21T00:00:00Z", "2024-05-30T23:59:59Z"),
        ("2024-05-31T00:00:00Z", "2024-05-31T23:59:59Z"),
    ]
    t = pd.Timestamp("2024-05-11")
    assert [s.contains(t) for s in steps] == [False, True, False, False]
    assert steps[-1].contains(pd.Timestamp("2024-05-31T23:59:59"))


def test_anchored_offsets_cover_the_start():
    months = make_intervals(("2024-05-01", "2024-08-31"), "MS")
    assert [s.start.month for s in months] == [5, 6, 7, 8]
    mid = make_intervals(("2024-05-15", "2024-07-31"), "MS")  # May 15 is no month start
    assert [str(s.start.date()) for s in mid] == ["2024-05-15", "2024-06-01", "2024-07-01"]
    weeks = make_intervals(("2024-05-01", "2024-05-31"), "W")  # W-SUN; 2024-05-01 a Wednesday
    assert weeks[0].start == pd.Timestamp("2024-05-01")
    assert all(s.start.day_of_week == 6 for s in weeks[1:])
    one = make_intervals(("2024-05-01", "2024-05-03"), "MS")
    assert len(one) == 1 and one[0].closed


def test_explicit_intervals():
    steps = make_intervals(None, [("2024-05-01", "2024-05-31"), ("2024-07-01", "2024-07-31")])
    assert [(str(s.start), str(s.end)) for s in steps] == [
        ("2024-05-01 00:00:00", "2024-05-31 23:59:59"),
        ("2024-07-01 00:00:00", "2024-07-31 23:59:59"),
    ]
    assert all(s.closed for s in steps)
    assert span(steps) == ("2024-05-01T00:00:00Z", "2024-07-31T23:59:59Z")
    inside = make_intervals(("2024-01-01", "2024-12-31"), [("2024-05-01", "2024-05-02")])
    assert len(inside) == 1


@pytest.mark.parametrize(
    ("time", "freq", "match"),
    [
        (("2024-05-01", "2024-08-31"), None, "freq= is needed"),
        (("2024-05-01", "2024-08-31"), "10 parsecs", "not a pandas offset alias"),
        (("2024-05-01", "2024-08-31"), 42, "not a pandas offset alias"),
        (("2024-05-01", "2024-08-31"), "-10D", "does not move forward"),
        (("2024-05-01", "2024-08-31"), "1min", "at most"),
        (None, "10D", "needs time="),
        (("2024-08-31", "2024-05-01"), "10D", "reversed"),
        (("not a date", "2024-05-01"), "10D", "cannot read"),
        (None, [], "empty list"),
        (None, ["2024-05-01"], r"freq\[0\] must be a \(start, end\) pair"),
        (None, [("2024-05-31", "2024-05-01")], "reversed"),
        (None, [("2024-06-01", "2024-06-30"), ("2024-05-01", "2024-06-10")], "must not overlap"),
        (None, [("2024-06-01", "nope")], "cannot read"),
        (("2024-06-01", "2024-06-30"), [("2024-05-01", "2024-06-10")], "outside time="),
    ],
)
def test_bad_input_is_a_typed_error(time, freq, match):
    with pytest.raises(TemporalError, match=match) as info:
        make_intervals(time, freq)
    assert isinstance(info.value, ValidationError) and isinstance(info.value, XasyncError)


def test_max_intervals():
    ok = make_intervals(("2024-01-01", "2024-12-31"), "D")
    assert len(ok) == 366 <= MAX_INTERVALS


def test_options():
    check_options("orbit", "median")
    check_options("requests", "count")
    with pytest.raises(TemporalError, match="temporal must be"):
        check_options("scenes", "median")
    with pytest.raises(TemporalError, match="reducer must be"):
        check_options("orbit", "mode")


@pytest.mark.parametrize(
    ("script", "match"),
    [
        (NDVI.replace("//VERSION=3", "//VERSION=2"), "only Evalscript V3"),
        (NDVI.replace("evaluatePixel(s)", "evaluate(s)"), "needs setup"),
        (
            NDVI.replace('sampleType: "FLOAT32"}', 'sampleType: "FLOAT32"}, mosaicking: "ORBIT"'),
            "already multi-temporal",
        ),
        (
            NDVI.replace("function setup() {", "function setup() { throw new Error('x');"),
            "cannot be run",
        ),
        (NDVI + "\nfunction (", "cannot be run"),
    ],
)
def test_unwrappable_scripts(script, match):
    with pytest.raises(TemporalError, match=match) as info:
        check_wrappable(script)
    assert "temporal='requests'" in str(info.value)


def test_wrapped_outputs_are_float32_interval_by_band():
    outs = parse_outputs(
        """//VERSION=3
function setup() { return {input: ["B04"], output: [{id: "a", bands: 3, sampleType: "UINT8"},
                                                    {id: "b", bands: 1}]}; }
function evaluatePixel(s) { return {a: [1, 2, 3], b: [4]}; }
"""
    )
    wrapped = wrapped_outputs(outs, 13)
    assert [(o.id, o.bands, o.sample_type, o.dtype) for o in wrapped] == [
        ("a", 39, "FLOAT32", "float32"),
        ("b", 13, "FLOAT32", "float32"),
    ]


def _run_wrapped(script: str, scenes: list[dict], samples: list[dict]) -> tuple[dict, dict, dict]:
    """Run the wrapped script in QuickJS like the service: setup, evaluatePixel, metadata."""
    import quickjs

    from xasync.evalscript import _PRELUDE

    ctx = quickjs.Context()
    ctx.eval(_PRELUDE)
    ctx.eval(script)
    setup = json.loads(ctx.eval("JSON.stringify(setup())"))
    ctx.eval(f"var __sc = {{orbits: {json.dumps(scenes)}}};")
    pixel = json.loads(
        ctx.eval(f"JSON.stringify(evaluatePixel({json.dumps(samples)}, __sc, {{}}, {{}}, {{}}))")
    )
    meta = json.loads(
        ctx.eval("var __m = {}; updateOutputMetadata(__sc, {}, __m); JSON.stringify(__m.userData)")
    )
    return setup, pixel, meta


def _orbit(date: str) -> dict:
    return {
        "dateFrom": date[:10] + "T00:00:00Z",
        "dateTo": date[:10] + "T23:59:59Z",
        "tiles": [{"date": date}],
    }


SCENES = [
    _orbit(d)
    for d in (
        "2024-05-14T10:00:00Z",
        "2024-05-09T10:00:00Z",
        "2024-05-04T10:00:00Z",
        "2024-05-25T10:00:00Z",
    )
]
SAMPLES = [
    {"B04": 0.1, "B08": 0.5, "dataMask": 1},  # 05-14 (interval 1)
    {"B04": 0.2, "B08": 0.4, "dataMask": 1},  # 05-09 (interval 0)
    {"B04": 0.1, "B08": 0.3, "dataMask": 1},  # 05-04 (interval 0)
    {"B04": 0.9, "B08": 0.9, "dataMask": 0},  # 05-25 (interval 2): not valid
]


@pytest.mark.parametrize(
    ("reducer", "expected"),
    [
        ("median", [np.median([1 / 3, 0.5]), 2 / 3, None]),
        ("mean", [np.mean([1 / 3, 0.5]), 2 / 3, None]),
        ("min", [1 / 3, 2 / 3, None]),
        ("max", [0.5, 2 / 3, None]),
        ("first", [0.5, 2 / 3, None]),  # 05-04 comes last in the samples (most recent first)
        ("last", [1 / 3, 2 / 3, None]),
        ("count", [2, 1, 0]),
    ],
)
def test_reducers_in_quickjs(reducer, expected):
    steps = make_intervals(("2024-05-01", "2024-05-30"), "10D")
    script = wrap_evalscript(NDVI, parse_outputs(NDVI), steps, reducer)
    assert script.startswith("//VERSION=3\n")
    setup, pixel, meta = _run_wrapped(script, SCENES, SAMPLES)
    assert setup["mosaicking"] == "ORBIT"
    assert setup["input"] == ["B04", "B08", "dataMask"]  # dataMask added to find valid scenes
    assert setup["output"] == [{"id": "default", "bands": 3, "sampleType": "FLOAT32"}]
    got = pixel["default"]
    assert len(got) == 3
    for g, e in zip(got, expected, strict=True):
        assert g is None if e is None else g == pytest.approx(e)  # JSON writes NaN as null
    assert meta["reducer"] == reducer
    assert [len(i["scenes"]) for i in meta["intervals"]] == [2, 1, 1]
    assert meta["intervals"][0]["scenes"] == ["2024-05-04T10:00:00Z", "2024-05-09T10:00:00Z"]
    assert scene_counts(meta, 3).tolist() == [2, 1, 1]


def test_input_objects_and_units_keep_their_shape():
    script = NDVI.replace(
        'input: ["B04", "B08"]', 'input: [{bands: ["B04", "B08"], units: ["DN", "DN"]}]'
    )
    steps = make_intervals(("2024-05-01", "2024-05-30"), "10D")
    setup, _, _ = _run_wrapped(
        wrap_evalscript(script, parse_outputs(script), steps), SCENES, SAMPLES
    )
    assert setup["input"] == [{"bands": ["B04", "B08", "dataMask"], "units": ["DN", "DN", "DN"]}]


def test_wrapper_keeps_user_names_private():
    script = NDVI + "\nvar helper = 3; function setup2() { return helper; }\n"
    steps = make_intervals(("2024-05-01", "2024-05-30"), "10D")
    wrapped = wrap_evalscript(script, parse_outputs(script), steps, "max")
    import quickjs

    ctx = quickjs.Context()
    ctx.eval(wrapped)
    assert ctx.eval("typeof helper") == "undefined"  # the user's globals live in a closure


def test_scene_counts_without_userdata():
    assert scene_counts({}, 3).tolist() == [-1, -1, -1]
    assert scene_counts({"intervals": [{"scenes": ["a"]}]}, 2).tolist() == [-1, -1]


@pytest.mark.parametrize(
    "collection",
    ["sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd", "landsat-ot-l2", "dem", "modis", "hls"],
)
@pytest.mark.parametrize(
    "time_range",
    [
        ("2024-05-01T00:00:00Z", "2024-08-31T23:59:59Z"),
        ("2024-06-06T00:00:00Z", "2024-06-06T23:59:59Z"),
        ("2023-12-30T10:00:00Z", "2024-01-09T10:00:00Z"),
    ],
)
def test_scene_count_model_is_the_emulator_calendar(collection, time_range):
    from xasync.emulator.acquisitions import scenes_between
    from xasync.timeseries import expected_scenes

    t0, t1 = (dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in time_range)
    assert expected_scenes(collection, time_range) == len(scenes_between(collection, t0, t1))
