"""The grouped row estimates of ``process`` equal the per-request path of ``estimate``
(:func:`xasync.estimate.estimate_specs`, :func:`xasync.estimate.check_budget`)."""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
from shapely.geometry import box

from xasync import estimate, rowcost
from xasync.errors import BudgetExceeded
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B02", "B03", "B04", "B08"], output: [{id: "a", bands: 2, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {a: [0, 1]}; }
"""
OPAQUE = "//VERSION=3\nfunction setup() { return undefined_name; }\nfunction evaluatePixel(s) {}"
TIME = ("2023-06-01", "2023-06-30")


def frame() -> gpd.GeoDataFrame:
    sides = [0.0005, 0.001, 0.0005, 0.003, 0.02, 0.001]
    geoms = [box(14 + 0.05 * i, 46, 14 + 0.05 * i + s, 46 + s) for i, s in enumerate(sides)]
    geoms += geoms[:2]  # rows sharing a request
    return gpd.GeoDataFrame(geometry=geoms, crs=4326)


def specs(script=ES, **kw):
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/x", **kw}
    return build_specs(frame(), script, **kw)


@pytest.mark.parametrize("scenes", [None, 7])
def test_grouped_estimates_equal_the_per_request_estimates(scenes):
    s = specs()
    per_request = estimate.estimate_specs(s, scenes=scenes)["estimated_pu"].tolist()
    assert rowcost.row_estimates(s, scenes=scenes) == per_request
    assert len({x.grid.shape for x in s}) < len({x.row_url for x in s})  # shapes are shared


def test_the_budget_is_checked_the_same_way():
    s = specs()
    per_request = estimate.estimate_specs(s)["estimated_pu"].tolist()
    total = sum(per_request)
    with pytest.raises(BudgetExceeded) as grouped:
        rowcost.row_estimates(s, max_pu=total / 2)
    with pytest.raises(BudgetExceeded) as plain:
        estimate.check_budget(s, total / 2)
    assert str(grouped.value) == str(plain.value)
    assert rowcost.row_estimates(s, max_pu=total * 2) == per_request


def test_a_script_that_cannot_be_priced_gives_nan_rows():
    outputs = {"a": {"bands": 1, "sampleType": "UINT8"}}
    s = specs(OPAQUE, outputs=outputs)
    assert all(math.isnan(v) for v in rowcost.row_estimates(s))
