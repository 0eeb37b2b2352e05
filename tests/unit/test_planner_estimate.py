"""The estimate of a planned call equals summing every row's requests row by row."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from xasync.planned import estimate_planned, plan_specs
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {ndvi: [0]}; }
"""
KW = {
    "time": ("2023-06-01", "2023-06-30"),
    "resolution": 10,
    "crs": "utm",
    "delivery": "s3://bkt/runs",
}


def reference(planned, specs, index):
    """The estimate as the earlier code computed it: each row's requests, summed row by row."""
    from xasync.estimate import ESTIMATE_COLUMNS
    from xasync.rowcost import request_factors_by_url

    costs = request_factors_by_url(planned.requests)
    urls = [tuple(planned.requests[k].row_url for k in ks) for ks in planned.row_requests]
    shares: dict[str, int] = {}
    for row_urls in urls:
        for u in set(row_urls):
            shares[u] = shares.get(u, 0) + 1
    rows = []
    for spec, row_urls in zip(specs, urls, strict=True):
        fs = [costs[u] for u in row_urls]
        rows.append(
            (
                " ".join(u.rsplit("/", 1)[-1] for u in row_urls),
                spec.grid.width,
                spec.grid.height,
                fs[0].input_bands,
                fs[0].samples,
                sum(f.pu for f in fs),
                shares[row_urls[0]],
                sum(costs[u].pu / shares[u] for u in row_urls),
                all(f.exact for f in fs),
            )
        )
    frame = pd.DataFrame(rows, index=index, columns=ESTIMATE_COLUMNS)
    frame.attrs["total_pu"] = float(sum(f.pu for f in costs.values()))
    frame.attrs["requests"] = len(costs)
    return frame


def frame_of_fields() -> gpd.GeoDataFrame:
    small = [box(14.0 + 0.001 * i, 46.0, 14.0005 + 0.001 * i, 46.0004) for i in range(9)]
    far = [box(14.3, 46.2, 14.3004, 46.2003)]
    big = [box(14.1, 46.05, 14.14, 46.08)]  # about 310 x 335 px: tiled at 150 px
    geoms = small + far + big + [small[2], big[0]]  # identical rows
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"r{i}" for i in range(len(geoms))])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"pack": True}, id="packs"),
        pytest.param({"pack": True, "max_request_px": 150}, id="packs-and-tiles"),
        pytest.param({"max_request_px": 150}, id="tiles"),
        pytest.param({"pack": True, "keep_alone": {0, 4}}, id="kept-alone"),
    ],
)
def test_planned_estimate_equals_the_row_by_row_sums(options):
    gdf = frame_of_fields()
    specs = build_specs(gdf, ES, **KW)
    planned = plan_specs(specs, **options)
    frame = estimate_planned(planned, specs, gdf.index)
    expected = reference(planned, specs, gdf.index)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert frame.attrs == expected.attrs
    assert frame["estimated_pu"].sum() == pytest.approx(frame.attrs["total_pu"])
    if options.get("pack"):
        assert frame.attrs["requests"] < len(gdf)  # something was packed


def test_planned_estimate_of_no_rows_and_bad_index():
    from xasync.errors import ValidationError

    specs = build_specs(frame_of_fields(), ES, **KW)
    planned = plan_specs(specs[:0], pack=True)
    frame = estimate_planned(planned, [], None)
    pd.testing.assert_frame_equal(frame, reference(planned, [], pd.RangeIndex(0)))
    with pytest.raises(ValidationError):
        estimate_planned(plan_specs(specs, pack=True), specs, ["a"])
