"""Estimates of whole calls: per-row frames, shared requests, budgets, no network at all."""

from __future__ import annotations

import math
import socket

import geopandas as gpd
import pytest
from shapely.geometry import box

from xasync.errors import ValidationError, XasyncError
from xasync.estimate import (
    ESTIMATE_COLUMNS,
    BudgetExceeded,
    check_budget,
    estimate,
    estimate_specs,
)
from xasync.evalscript import EvalscriptError
from xasync.request import build_specs
from xasync.rowcost import row_estimates

X0, Y0 = 500_000.0, 5_100_000.0  # UTM 33N metres, on the 10 m grid

NDVI_F32 = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08", "dataMask"]}],
          output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return {ndvi: [(s.B08 - s.B04) / (s.B08 + s.B04)]}; }
"""

RGB_TWO_OUTPUTS = """//VERSION=3
function setup() {
  return {input: ["B02", "B03", "B04", "dataMask"],
          output: [{id: "rgb", bands: 3, sampleType: "UINT8"},
                   {id: "raw", bands: 3, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {rgb: [s.B04, s.B03, s.B02], raw: [s.B04, s.B03, s.B02]}; }
"""

ORBIT = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], mosaicking: Mosaicking.ORBIT,
          output: {bands: 1, sampleType: "UINT16"}};
}
function evaluatePixel(samples) { return [samples.length]; }
"""

TIME = ("2024-06-01", "2024-06-30")


def _fields(*sides_px: int, labels=None) -> gpd.GeoDataFrame:
    """Square fields of the given sides in 10 m pixels, side by side, in EPSG:32633."""
    geoms, x = [], X0
    for n in sides_px:
        geoms.append(box(x, Y0, x + 10 * n, Y0 + 10 * n))
        x += 10 * n + 1000
    return gpd.GeoDataFrame(
        {"name": [f"f{n}" for n in sides_px]}, geometry=geoms, crs=32633
    ).set_axis(labels if labels is not None else range(len(geoms)))


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network access to {address!r} during an estimate")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "XASYNC_CLIENT_ID", "XASYNC_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return attempts


def test_estimate_rows_indexed_like_the_frame_without_network(no_network):
    gdf = _fields(2048, 100, 50, labels=["a", "b", "c"])
    frame = estimate(gdf, NDVI_F32, time=TIME, resolution=10)
    assert no_network == []
    with pytest.raises(AssertionError, match="network access"):  # the guard does guard
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert no_network == [("127.0.0.1", 9)]
    assert list(frame.columns) == [*ESTIMATE_COLUMNS, "request_state", "pu_to_pay"]
    assert list(frame.index) == ["a", "b", "c"]
    assert list(frame["width"]) == [2048, 100, 50]
    assert list(frame["height"]) == [2048, 100, 50]
    assert list(frame["input_bands"]) == [2, 2, 2]  # B04, B08; dataMask not counted
    # a: 2048^2/512^2 = 16 x 2/3 x 2 (FLOAT32) x 2/3 (>= 10000 px) = 14.2222
    # b: 100^2 = 10000 px: 0.0381 x 2/3 x 2 x 2/3 = 0.0339 -> minimum 10
    # c: 2500 px: 0.01 x 2/3 x 2 = 0.0133 -> minimum 10
    assert frame["estimated_pu"].tolist() == pytest.approx([16 * 2 / 3 * 2 * 2 / 3, 10.0, 10.0])
    assert frame.attrs["total_pu"] == pytest.approx(frame["estimated_pu"].sum())
    assert frame["requests"].str.fullmatch(r"[0-9a-f]{24}").all()
    assert frame["requests"].is_unique
    assert frame["exact"].all()


def test_estimate_requests_match_the_row_folders_process_would_use(no_network):
    gdf = _fields(600, 700)
    frame = estimate(
        gdf, NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/run", check_delivery=False
    )
    specs = build_specs(gdf, NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/run")
    assert [f"s3://bkt/run/{r}" for r in frame["requests"]] == [s.row_url for s in specs]
    # the delivery root changes where a request is delivered, not what it costs
    other = estimate(gdf, NDVI_F32, time=TIME, resolution=10)
    assert other["estimated_pu"].tolist() == frame["estimated_pu"].tolist()


def test_shared_request_is_split_among_its_rows(no_network):
    specs = build_specs(
        _fields(3000, 1200), NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/p"
    )
    big, small = specs
    rows = [big, small, big, big]  # three rows buying the same request (same row_url)
    frame = estimate_specs(rows, ["r0", "r1", "r2", "r3"])
    big_pu = 9e6 / 262144 * 2 / 3 * 2 * 2 / 3  # 30.5176
    # small: 1200^2 = 1.44e6/262144 x 2/3 x 2 x 2/3 = 4.8828 -> minimum 10
    assert frame["shared_by"].tolist() == [3, 1, 3, 3]
    assert frame["request_pu"].tolist() == pytest.approx([big_pu, 10.0, big_pu, big_pu])
    assert frame["estimated_pu"].tolist() == pytest.approx(
        [big_pu / 3, 10.0, big_pu / 3, big_pu / 3]
    )
    assert frame["estimated_pu"].sum() == pytest.approx(big_pu + 10.0)
    assert frame.attrs["total_pu"] == pytest.approx(big_pu + 10.0)
    assert frame.loc["r0", "requests"] == frame.loc["r3", "requests"]


def test_only_requested_outputs_set_the_format_factor(no_network):
    gdf = _fields(1024)
    both = estimate(gdf, RGB_TWO_OUTPUTS, time=TIME, resolution=10)
    rgb = estimate(gdf, RGB_TWO_OUTPUTS, time=TIME, resolution=10, responses=["rgb"])
    # 1024^2 = 4 x 3/3 x (2 with the FLOAT32 "raw", else 1) x 2/3
    assert both["request_pu"].iloc[0] == pytest.approx(max(10.0, 4 * 2 * 2 / 3))  # 5.33 -> 10
    big = _fields(4096)
    assert estimate(big, RGB_TWO_OUTPUTS, time=TIME, resolution=10)["request_pu"].iloc[
        0
    ] == pytest.approx(64 * 2 * 2 / 3)  # 85.3333
    assert estimate(big, RGB_TWO_OUTPUTS, time=TIME, resolution=10, responses=["rgb"])[
        "request_pu"
    ].iloc[0] == pytest.approx(64 * 2 / 3)  # 42.6667
    assert rgb["input_bands"].iloc[0] == 3


def test_orbit_mosaicking_is_a_lower_bound_until_scenes_are_given(no_network):
    gdf = _fields(4096)
    unknown = estimate(gdf, ORBIT, time=TIME, resolution=10)
    known = estimate(gdf, ORBIT, time=TIME, resolution=10, scenes=6)
    # 4096^2 = 64 x 2/3 x 1 (UINT16) x samples x 2/3: 28.4444 for 1 sample, 170.6667 for 6
    assert unknown["estimated_pu"].iloc[0] == pytest.approx(64 * 2 / 3 * 2 / 3)
    assert not unknown["exact"].iloc[0]
    assert known["estimated_pu"].iloc[0] == pytest.approx(64 * 2 / 3 * 6 * 2 / 3)
    assert known["exact"].iloc[0]
    assert known["samples"].iloc[0] == 6


def test_setup_that_cannot_run_needs_input_bands(no_network):
    script = "function setup() { return {input: [helper()], output: {bands: 1}}; }"
    gdf = _fields(2048)
    with pytest.raises(EvalscriptError, match="input_bands="):
        estimate(gdf, script, time=TIME, resolution=10, outputs={"default": 1})
    frame = estimate(gdf, script, time=TIME, resolution=10, outputs={"default": 1}, input_bands=6)
    assert frame["estimated_pu"].iloc[0] == pytest.approx(16 * 2 * 2 / 3)  # 16 x 6/3 x 2/3


def test_estimate_rejects_what_process_rejects(no_network):
    with pytest.raises(ValidationError, match="time range"):
        estimate(_fields(100), NDVI_F32, resolution=10)
    with pytest.raises(ValidationError):
        estimate(_fields(100), NDVI_F32, time=TIME)  # neither resolution nor size


def test_check_budget_raises_before_anything_is_paid(no_network):
    specs = build_specs(
        _fields(4096, 4096, 50), NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/p"
    )
    each = 64 * 2 / 3 * 2 * 2 / 3  # 56.8889 per 4096 px field; the small one costs 10
    total = 2 * each + 10.0  # 123.7778
    assert check_budget(specs, 200) == pytest.approx(total)
    assert check_budget(specs, None) == pytest.approx(total)
    with pytest.raises(BudgetExceeded) as info:
        check_budget(specs, 100)
    err = info.value
    assert isinstance(err, ValidationError)
    assert isinstance(err, XasyncError)
    assert isinstance(err, ValueError)
    assert err.estimate_pu == pytest.approx(total)
    assert (err.max_pu, err.requests) == (100.0, 3)
    assert "123.78 PU" in str(err)
    assert "max_pu=100" in str(err)
    # requests already delivered are not bought again
    assert check_budget(specs, 100, skip=[specs[0].row_url]) == pytest.approx(each + 10.0)


def test_budget_counts_a_shared_request_once(no_network):
    specs = build_specs(_fields(4096), NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/p")
    each = 64 * 2 / 3 * 2 * 2 / 3
    assert check_budget(specs * 3, 60) == pytest.approx(each)  # one request, three rows


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "100", True])
def test_check_budget_rejects_a_bad_budget(bad, no_network):
    specs = build_specs(_fields(100), NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/p")
    with pytest.raises(ValidationError, match="max_pu"):
        check_budget(specs, bad)


def test_lower_bound_is_said_in_the_budget_message(no_network):
    specs = build_specs(_fields(4096), ORBIT, time=TIME, resolution=10, delivery="s3://bkt/p")
    with pytest.raises(BudgetExceeded, match="at least 28.44 PU"):
        check_budget(specs, 20)


def test_row_estimates_for_process(no_network):
    specs = build_specs(
        _fields(4096, 50), NDVI_F32, time=TIME, resolution=10, delivery="s3://bkt/p"
    )
    each = 64 * 2 / 3 * 2 * 2 / 3  # 56.8889
    rows = [specs[0], specs[1], specs[0]]  # the big request shared by two rows
    assert row_estimates(rows) == pytest.approx([each / 2, 10.0, each / 2])
    assert row_estimates(rows, 100) == pytest.approx([each / 2, 10.0, each / 2])
    with pytest.raises(BudgetExceeded, match=r"the 2 requests .* 66.89 PU"):
        row_estimates(rows, 60)
    with pytest.raises(ValidationError, match="max_pu"):
        row_estimates(rows, -1)


def test_row_estimates_without_a_runnable_setup(no_network):
    """process keeps working when setup() cannot run locally; a budget then cannot be checked."""
    script = "function setup() { return {input: [helper()], output: {bands: 1}}; }"
    specs = build_specs(
        _fields(100),
        script,
        time=TIME,
        resolution=10,
        delivery="s3://bkt/p",
        outputs={"default": 1},
    )
    values = row_estimates(specs)
    assert len(values) == 1
    assert math.isnan(values[0])
    with pytest.raises(EvalscriptError, match="cannot check max_pu"):
        row_estimates(specs, 100)


def test_evalscript_reference_is_read_from_its_bucket(s3_server, bucket, s3fs_fs):
    """An s3:// evalscript is read (once) from the user's bucket to learn its input bands."""
    url = f"s3://{bucket}/scripts/ndvi-{id(s3fs_fs)}.js"
    s3fs_fs.pipe(url, NDVI_F32.encode())
    gdf = _fields(2048, 64)
    by_ref = estimate(gdf, url, time=TIME, resolution=10, storage_options=s3_server.storage_options)
    inline = estimate(gdf, NDVI_F32, time=TIME, resolution=10)
    assert by_ref["estimated_pu"].tolist() == pytest.approx(inline["estimated_pu"].tolist())
    assert by_ref["estimated_pu"].iloc[0] == pytest.approx(16 * 2 / 3 * 2 * 2 / 3)  # 14.2222


def test_estimate_takes_every_keyword_of_process():
    """gdf.xasync.estimate(...) can be called with the very arguments given to process."""
    import inspect

    from xasync.accessor import XasyncAccessor

    process_params = list(inspect.signature(XasyncAccessor.process).parameters)[1:]  # no self
    estimate_params = list(inspect.signature(estimate).parameters)[1:]  # no gdf
    missing = [p for p in process_params if p not in estimate_params]
    assert not missing, f"estimate() lacks {missing}"
    # positional order too, so that positional calls mean the same thing
    positional = [
        p.name
        for p in inspect.signature(XasyncAccessor.process).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ][1:]
    assert estimate_params[: len(positional)] == positional
