"""build_specs validation (the bad-input matrix), RequestSpec bodies, tokens and read plans."""

from __future__ import annotations

import datetime as dt
import pickle

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from xasync.errors import ValidationError, XasyncError
from xasync.evalscript import EvalscriptError
from xasync.grid import GridError, PixelGrid
from xasync.inputs import parse_time_range
from xasync.request import (
    CollectionError,
    CrsError,
    DeliveryUrlError,
    GeometryError,
    OptionError,
    RequestSpec,
    ResponseError,
    TimeRangeError,
    build_specs,
)

ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"},
                                          {id: "rgb", bands: 3}]};
}
function evaluatePixel(s) { return {ndvi: [0], rgb: [0, 0, 0]}; }
"""
TIME = ("2023-06-01", "2023-06-30")
SECRET = "SECRET-sk-9f8e7d6c5b4a"


def fields(n: int = 3, crs: str | None = "EPSG:4326") -> gpd.GeoDataFrame:
    geoms = [box(14.50 + 0.02 * i, 46.00, 14.51 + 0.02 * i, 46.01) for i in range(n)]
    return gpd.GeoDataFrame({"name": [f"f{i}" for i in range(n)]}, geometry=geoms, crs=crs)


def build(gdf=None, **kw):
    args = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/runs/a"}
    args.update(kw)
    return build_specs(fields() if gdf is None else gdf, ES, **args)


# ----------------------------------------------------------------------------- bad-input matrix

BOWTIE = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])


def _gdf(geoms, crs="EPSG:4326"):
    return gpd.GeoDataFrame(geometry=geoms, crs=crs)


BAD_INPUTS = {
    "empty gdf": ({"gdf": fields(0)}, GeometryError, "empty"),
    "no crs": ({"gdf": fields(2, crs=None)}, CrsError, "no CRS"),
    "not a gdf": ({"gdf": pd.DataFrame({"a": [1]})}, GeometryError, "GeoDataFrame"),
    "empty geometry": (
        {"gdf": _gdf([box(14, 46, 14.01, 46.01), Polygon()])},
        GeometryError,
        "row 1",
    ),
    "missing geometry": ({"gdf": _gdf([None, box(14, 46, 14.01, 46.01)])}, GeometryError, "row 0"),
    "invalid geometry": ({"gdf": _gdf([BOWTIE])}, GeometryError, "Self-intersection"),
    "point": ({"gdf": _gdf([Point(14, 46)])}, GeometryError, "Point"),
    "line": ({"gdf": _gdf([LineString([(14, 46), (14.1, 46.1)])])}, GeometryError, "LineString"),
    "too many pixels": ({"gdf": _gdf([box(14, 46, 16.5, 46.2)])}, GridError, "would be"),
    "too large size": ({"resolution": None, "size": (20000, 100)}, GridError, "10000"),
    "reversed time": ({"time": ("2023-06-30", "2023-06-01")}, TimeRangeError, "reversed"),
    "unparsable time": ({"time": ("last tuesday", "2023-06-01")}, TimeRangeError, "last tuesday"),
    "no time": ({"time": None}, TimeRangeError, "time range is needed"),
    "unknown sampleType": (
        {"evalscript": "function setup(){return {output:{bands:1,sampleType:'UINT64'}}}"},
        EvalscriptError,
        "UINT64",
    ),
    "evalscript without setup": (
        {"evalscript": "function evaluatePixel(s){return [1]}"},
        EvalscriptError,
        "setup",
    ),
    "delivery not s3": ({"delivery": "/tmp/out"}, DeliveryUrlError, "s3://"),
    "delivery https": ({"delivery": "https://bkt.s3.amazonaws.com/x"}, DeliveryUrlError, "s3://"),
    "delivery bad bucket": ({"delivery": "s3://My_Bucket/x"}, DeliveryUrlError, "bucket"),
    "delivery placeholder": (
        {"delivery": "s3://bkt/<REQUEST_ID>"},
        DeliveryUrlError,
        "placeholder",
    ),
    "unknown collection": ({"data": "sentinel-2-l3a"}, CollectionError, "sentinel-2-l2a"),
    "data dict without type": ({"data": [{"id": "s2"}]}, CollectionError, "type"),
    "both size and resolution": ({"size": (100, 100)}, OptionError, "not both"),
    "neither size nor resolution": ({"resolution": None}, OptionError, "exactly one"),
    "negative resolution": ({"resolution": -10}, GridError, "positive"),
    "zero resolution": ({"resolution": (10, 0)}, GridError, "positive"),
    "metres on degrees": ({"crs": None, "resolution": 10}, GridError, "crs='utm'"),
    "degrees on metres": ({"resolution": 0.0001}, GridError, "looks like degrees"),
    "crs without epsg": (
        {"crs": "+proj=aea +lat_1=29.5 +lat_2=45.5 +lon_0=-96 +datum=WGS84"},
        CrsError,
        "EPSG",
    ),
    "crs nonsense": ({"crs": "not-a-crs"}, CrsError, "not-a-crs"),
    "unknown response": ({"responses": ["ndvi", "ndwi"]}, ResponseError, "ndwi"),
    "userdata response": ({"responses": ["userdata"]}, ResponseError, "userdata"),
    "bounds mode": ({"bounds": "convex"}, OptionError, "bounds"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_inputs_are_typed_errors(case):
    kw, exc_type, needle = BAD_INPUTS[case]
    kw = dict(kw)
    gdf = kw.pop("gdf", None)
    script = kw.pop("evalscript", ES)
    args = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/runs/a"}
    args.update(kw)
    with pytest.raises(exc_type) as info:
        build_specs(fields() if gdf is None else gdf, script, **args)
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, XasyncError)
    assert needle in str(info.value), str(info.value)


def test_too_many_pixels_message_names_row_size_and_fitting_resolution():
    gdf = _gdf([box(14, 46, 14.01, 46.01), box(14, 46, 16.5, 46.2)])
    gdf.index = ["small", "huge"]
    with pytest.raises(GridError) as info:
        build(gdf)
    msg = str(info.value)
    assert "row 'huge'" in msg
    assert "more than the 10000 px" in msg
    assert "resolution of at least" in msg


# ------------------------------------------------------------------------------- good requests


def test_specs_one_per_row_with_utm_grid_and_body():
    specs = build()
    assert len(specs) == 3
    s = specs[0]
    assert s.grid.epsg == 32633
    assert s.grid.transform.a == 10.0
    assert all(v % 10 == 0 for v in s.grid.bbox)
    body = s.body({"accessKey": "AK", "secretAccessKey": SECRET})
    assert body["input"]["bounds"]["bbox"] == list(s.grid.bbox)
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/EPSG/0/32633")
    assert body["input"]["bounds"]["geometry"]["type"] == "Polygon"
    assert body["output"]["width"] == s.grid.width
    assert body["output"]["height"] == s.grid.height
    assert "resx" not in body["output"]
    assert [r["identifier"] for r in body["output"]["responses"]] == ["ndvi", "rgb"]
    assert body["output"]["delivery"]["s3"] == {
        "url": s.row_url,
        "accessKey": "AK",
        "secretAccessKey": SECRET,
    }
    assert body["input"]["data"] == [
        {
            "type": "sentinel-2-l2a",
            "dataFilter": {
                "timeRange": {"from": "2023-06-01T00:00:00Z", "to": "2023-06-30T23:59:59Z"}
            },
        }
    ]
    assert body["evalscript"] == ES
    # The geometry sent lies inside the grid bbox, in the request CRS.
    g = shapely.geometry.shape(body["input"]["bounds"]["geometry"])
    assert shapely.box(*s.grid.bbox).contains(g)


def test_bbox_mode_sends_no_geometry_and_mask_goes_to_read_plan():
    (s,) = build(fields(1), bounds="bbox", mask=True, responses=["rgb"])
    body = s.body()
    assert "geometry" not in body["input"]["bounds"]
    plan = s.read_plan()
    assert plan.token == s.token
    assert plan.row_url == s.row_url
    assert plan.grid == s.grid
    assert [(o.identifier, o.bands, o.dtype) for o in plan.outputs] == [("rgb", 3, "uint8")]
    assert shapely.from_wkb(plan.mask_wkb).equals(shapely.from_wkb(s.geometry_wkb))
    assert build(fields(1))[0].read_plan().mask_wkb is None


def test_tokens_deterministic_and_shared_by_rows_with_the_same_request():
    a, b = build(), build()
    assert [s.token for s in a] == [s.token for s in b]
    assert [s.row_url for s in a] == [s.row_url for s in b]
    assert a[0].row_url == f"s3://bkt/runs/a/{a[0].token[:24]}"
    assert len({s.token for s in a}) == 3
    # Same geometry twice: one request, whatever the rows' labels and positions.
    twin = _gdf([box(14, 46, 14.01, 46.01)] * 2)
    t = build(twin)
    assert t[0].canonical_body() == t[1].canonical_body()
    assert t[0].token == t[1].token
    assert (t[0].label, t[1].label) == (0, 1)
    # Anything that changes the request changes the token; credentials do not.
    c = build(time=("2023-06-01", "2023-06-29"))
    assert c[0].token != a[0].token
    assert "delivery" not in a[0].canonical_body()["output"]


def test_secrets_never_in_spec_repr_pickle_or_token():
    (s,) = build(fields(1))
    s.body({"accessKey": "AK", "secretAccessKey": SECRET})
    for text in (repr(s), str(s), str(pickle.dumps(s)), s.token, repr(s.read_plan())):
        assert SECRET not in text
    with pytest.raises(DeliveryUrlError, match="unknown delivery keys"):
        s.body({"secret": SECRET})


def test_dask_tokenize_follows_the_request():
    from dask.base import tokenize

    a, b = build(fields(2))
    assert tokenize(a) == tokenize(build(fields(2))[0])
    assert tokenize(a) != tokenize(b)


def test_native_crs_and_explicit_crs_and_size():
    gdf = fields(2).to_crs(3857)
    specs = build(gdf, crs=None, resolution=20)
    assert {s.grid.epsg for s in specs} == {3857}
    specs = build(fields(2), crs="EPSG:3857", resolution=20)
    assert specs[0].grid.epsg == 3857
    assert specs[0].grid.transform.a == 20
    specs = build(fields(2), crs=None, resolution=None, size=(64, 32))
    assert specs[0].grid.epsg == 4326
    assert specs[0].grid.shape == (32, 64)
    assert specs[0].grid.bbox == tuple(fields(2).geometry[0].bounds)


def test_utm_per_row_across_zones_and_hemispheres():
    gdf = _gdf(
        [
            box(14.5, 46, 14.51, 46.01),
            box(-58.4, -34.6, -58.39, -34.59),
            box(5.3, 60.4, 5.31, 60.41),
        ]
    )
    assert [s.grid.epsg for s in build(gdf)] == [32633, 32721, 32632]


def test_multipolygon_and_labels():
    mp = MultiPolygon([box(14, 46, 14.01, 46.01), box(14.02, 46, 14.03, 46.01)])
    gdf = _gdf([mp])
    gdf.index = pd.Index([np.int64(7)])
    (s,) = build(gdf)
    assert s.body()["input"]["bounds"]["geometry"]["type"] == "MultiPolygon"
    assert s.read_plan().label == 7
    assert type(s.read_plan().label) is int


def test_collections_full_data_dicts_and_own_time_ranges():
    data = [
        {
            "type": "sentinel-1-grd",
            "id": "s1",
            "dataFilter": {
                "timeRange": {"from": "2023-01-01", "to": "2023-01-31"},
                "acquisitionMode": "IW",
            },
            "processing": {"backCoeff": "GAMMA0_TERRAIN"},
        },
        "byoc-1234-abcd",
        {"type": "S2L2A", "id": "s2", "dataFilter": {"maxCloudCoverage": 30}},
    ]
    (s,) = build(fields(1), data=data)
    items = s.body()["input"]["data"]
    assert items[0]["dataFilter"] == {
        "timeRange": {"from": "2023-01-01T00:00:00Z", "to": "2023-01-31T23:59:59Z"},
        "acquisitionMode": "IW",
    }
    assert items[1] == {
        "type": "byoc-1234-abcd",
        "dataFilter": {"timeRange": {"from": "2023-06-01T00:00:00Z", "to": "2023-06-30T23:59:59Z"}},
    }
    assert items[2]["dataFilter"]["maxCloudCoverage"] == 30
    assert data[2] == {"type": "S2L2A", "id": "s2", "dataFilter": {"maxCloudCoverage": 30}}
    # every item setting its own range: time= may be omitted
    (s,) = build(fields(1), data=[data[0]], time=None)
    assert s.time == ("2023-01-01T00:00:00Z", "2023-01-31T23:59:59Z")


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        (("2023-06-01", "2023-06-30"), ("2023-06-01T00:00:00Z", "2023-06-30T23:59:59Z")),
        ("2023-06-05", ("2023-06-05T00:00:00Z", "2023-06-05T23:59:59Z")),
        (dt.date(2023, 6, 5), ("2023-06-05T00:00:00Z", "2023-06-05T23:59:59Z")),
        (
            (dt.datetime(2023, 6, 1, 10, 30), pd.Timestamp("2023-06-02T12:00:00+02:00")),
            ("2023-06-01T10:30:00Z", "2023-06-02T10:00:00Z"),
        ),
        (
            ["2023-06-01T00:00:00Z", dt.date(2023, 6, 1)],
            ("2023-06-01T00:00:00Z", "2023-06-01T23:59:59Z"),
        ),
        (
            (np.datetime64("2023-06-01T06:00"), "2023-06-01T07:00:00Z"),
            ("2023-06-01T06:00:00Z", "2023-06-01T07:00:00Z"),
        ),
    ],
)
def test_time_forms(time, expected):
    assert parse_time_range(time) == expected


@pytest.mark.parametrize(
    "time",
    [
        ("2023-06-02T00:00:01Z", "2023-06-02T00:00:00Z"),
        ("a", "b"),
        (1, 2),
        ("2023-06-01",),
        ("2023-13-01", "2023-12-01"),
    ],
)
def test_bad_time_forms(time):
    with pytest.raises(TimeRangeError):
        parse_time_range(time)


def test_evalscript_reference_is_read_once_and_sent_by_url(s3_server, s3fs_fs, bucket):
    url = f"s3://{bucket}/scripts/ndvi.js"
    s3fs_fs.pipe(url, ES.encode())
    (s,) = build_specs(
        fields(1),
        url,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery="s3://bkt/p",
        storage_options=s3_server.storage_options,
    )
    assert [o.id for o in s.outputs] == ["ndvi", "rgb"]
    body = s.body({"accessKey": "AK", "secretAccessKey": "SK"})
    assert "evalscript" not in body
    assert body["evalscriptReference"] == {
        "s3": {"url": url, "accessKey": "AK", "secretAccessKey": "SK"}
    }
    assert s.canonical_body()["evalscriptReference"] == {"s3": {"url": url}}


def test_outputs_override_wins_but_a_reference_must_be_readable(s3_server, s3fs_fs, bucket):
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": "s3://bkt/p"}
    override = {"default": {"bands": 4, "sampleType": "INT16"}}
    # the script is part of the request's identity: it is read even when outputs= covers all
    with pytest.raises(EvalscriptError, match="could not read"):
        build_specs(fields(1), "s3://nowhere/script.js", outputs=override, **kw)
    url = f"s3://{bucket}/scripts/es.js"
    s3fs_fs.pipe(url, b"//VERSION=3 not evaluable locally")
    (s,) = build_specs(
        fields(1), url, outputs=override, storage_options=s3_server.storage_options, **kw
    )
    assert s.read_plan().outputs[0].dtype == "int16"
    assert s.responses == ("default",)


def test_ten_thousand_rows_are_handled_in_bulk(monkeypatch):
    """Geometry work is vectorised: shapely/pyproj calls per CRS group, never per row.

    (Counted, not timed: a busy machine cannot make this fail.)
    """
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-170, 170, 10_000), rng.uniform(-60, 60, 10_000)
    gdf = _gdf(shapely.box(x, y, x + 0.01, y + 0.01))
    calls = {"transform": 0, "to_crs": 0}
    real_transform, real_to_crs = shapely.transform, gpd.GeoSeries.to_crs

    def transform(*a, **k):
        calls["transform"] += 1
        return real_transform(*a, **k)

    def to_crs(self, *a, **k):
        calls["to_crs"] += 1
        return real_to_crs(self, *a, **k)

    monkeypatch.setattr(shapely, "transform", transform)
    monkeypatch.setattr(gpd.GeoSeries, "to_crs", to_crs)
    specs = build(gdf)
    assert len(specs) == 10_000
    groups = len({s.grid.epsg for s in specs})
    assert groups > 50
    assert calls["to_crs"] <= groups + 1  # one per UTM zone, plus lon/lat for the zones
    assert calls["transform"] <= 2  # rounding, and the antimeridian shift if any


def test_spec_is_frozen():
    (s,) = build(fields(1))
    with pytest.raises(AttributeError):
        s.grid = PixelGrid(4326, (0, 0, 1, 1), 1, 1)  # type: ignore[misc]
    assert isinstance(s, RequestSpec)


def test_3d_polygons_are_sent_2d():
    poly_z = Polygon([(14.5, 46.0, 300.0), (14.51, 46.0, 310.0), (14.51, 46.01, 305.0)])
    (s,) = build(_gdf([poly_z]))
    ring = s.body()["input"]["bounds"]["geometry"]["coordinates"][0]
    assert {len(pt) for pt in ring} == {2}


def test_crs_without_epsg_is_fine_when_reprojected_to_utm():
    aea = "+proj=aea +lat_1=40 +lat_2=50 +lon_0=14 +datum=WGS84 +units=m"
    gdf = fields(2).to_crs(aea)
    specs = build(gdf)  # crs="utm": each row goes to its UTM zone
    assert {s.grid.epsg for s in specs} == {32633}
    with pytest.raises(CrsError, match="no EPSG code"):
        build(gdf, crs=None)


def test_data_item_time_range_wins_over_time_argument():
    item = {
        "type": "sentinel-2-l2a",
        "dataFilter": {"timeRange": {"from": "2022-01-01", "to": "2022-01-02"}},
    }
    (s,) = build(fields(1), data=[item, "sentinel-1-grd"])
    ranges = [d["dataFilter"]["timeRange"] for d in s.body()["input"]["data"]]
    assert ranges == [
        {"from": "2022-01-01T00:00:00Z", "to": "2022-01-02T23:59:59Z"},
        {"from": "2023-06-01T00:00:00Z", "to": "2023-06-30T23:59:59Z"},
    ]
    with pytest.raises(TimeRangeError, match="reversed"):
        build(
            fields(1),
            data=[
                {
                    "type": "dem",
                    "dataFilter": {"timeRange": {"from": "2022-02-01", "to": "2022-01-01"}},
                }
            ],
        )


@pytest.mark.parametrize(
    "geom",
    [
        # a ring written across 180 degrees: as plain lon/lat it is 359.8 degrees wide
        Polygon([(179.9, -17.0), (-179.9, -17.0), (-179.9, -16.9), (179.9, -16.9)]),
        # the same area split at the antimeridian
        MultiPolygon([box(179.9, -17.0, 180.0, -16.9), box(-180.0, -17.0, -179.9, -16.9)]),
    ],
    ids=["ring-across-180", "split-at-180"],
)
def test_utm_on_the_antimeridian_picks_the_zone_of_the_field(geom):
    (s,) = build(_gdf([geom]))
    assert s.grid.epsg in (32760, 32701)  # zone 60S or 1S, never 31S
    t = s.grid.transform
    assert t.a > 0 and t.e < 0  # north up
    # about 0.2 x 0.1 degrees at 17 S: ~21 km x 11 km, not a band around the globe
    assert 2000 <= s.grid.width <= 2200 and 1050 <= s.grid.height <= 1200


def test_specs_filled_directly_equal_specs_built_by_init():
    import dataclasses

    from xasync.canonical import _GEOMETRY_TEXT
    from xasync.request import RequestSpec

    specs = build_specs(
        gpd.GeoDataFrame(geometry=[box(14.0, 46.0, 14.01, 46.01)] * 2, crs=4326, index=["a", 7]),
        "//VERSION=3\nfunction setup(){return {input:['B04'],output:{bands:1}}}",
        time=("2024-06-01", "2024-06-02"),
        resolution=10,
        crs="utm",
        delivery="s3://bucket/p",
        mask=True,
    )
    for spec in specs:
        kwargs = {f.name: getattr(spec, f.name) for f in dataclasses.fields(RequestSpec)}
        built = RequestSpec(**kwargs)
        cached = ("token", "row_url", _GEOMETRY_TEXT)  # computed at once for the call
        fields = {k: v for k, v in spec.__dict__.items() if k not in cached}
        assert fields == built.__dict__ and list(fields) == list(built.__dict__)
        assert (spec.token, spec.row_url) == (built.token, built.row_url)
    assert [s.position for s in specs] == [0, 1] and [s.label for s in specs] == ["a", 7]


@pytest.mark.parametrize("mask", [False, True])
def test_read_plans_at_once_equal_one_by_one(mask):
    from xasync.specrows import read_plans

    index = ["a", 7, np.int64(3), (1, "b"), pd.Timestamp("2024-01-01"), 2.5]
    specs = build_specs(
        gpd.GeoDataFrame(geometry=[box(14.0, 46.0, 14.01, 46.01)] * 6, crs=4326, index=index),
        "//VERSION=3\nfunction setup(){return {input:['B04'],output:[{id:'a',bands:1},"
        "{id:'b',bands:2,sampleType:'UINT8'}]}}",
        time=("2024-06-01", "2024-06-02"),
        resolution=10,
        crs="utm",
        delivery="s3://bucket/p",
        mask=mask,
        responses=["b", "a"],
    )
    one_by_one = [s.read_plan() for s in specs]
    at_once = read_plans(specs)
    assert at_once == one_by_one
    for a, b in zip(at_once, one_by_one):
        assert list(a.__dict__.items()) == list(b.__dict__.items())
        assert type(a.label) is type(b.label)


def test_utm_zones_at_once_equal_one_by_one():
    from xasync.geometry import utm_epsgs
    from xasync.grid import utm_epsg

    rng = np.random.default_rng(1)
    lon = np.concatenate([rng.uniform(-200, 200, 20000), np.arange(-186.0, 187.0, 3.0)])
    lat = np.concatenate([rng.uniform(-90, 90, 20000), np.resize([-80, 0, 56, 64, 72, 84], 125)])
    edges = [(3.0, 56.0), (12.0, 63.999), (0.0, 72.0), (9.0, 80.0), (21.0, 83.9), (42.0, 75.0)]
    edges += [(33.0, 72.0), (-0.0, -0.0), (180.0, 10.0), (-180.0, -10.0), (2.9999999, 60.0)]
    lon = np.concatenate([lon, [e[0] for e in edges]])
    lat = np.concatenate([lat, [e[1] for e in edges]])
    got = utm_epsgs(lon, lat)
    assert got.tolist() == [utm_epsg(x, y) for x, y in zip(lon.tolist(), lat.tolist())]


@pytest.mark.parametrize(
    "index",
    [
        pd.Index([1.0, np.nan, 3.0]),
        pd.DatetimeIndex(["2024-01-01", None, "2024-01-03"]),
        pd.Index(["a", None, "c"]),
        pd.MultiIndex.from_tuples([(1, "a"), (2, None), (3, "c")]),
    ],
)
def test_a_missing_label_is_named_whatever_the_index(index):
    from xasync.errors import LabelError
    from xasync.geometry import check_labels

    with pytest.raises(LabelError, match="row 1 has a missing label"):
        check_labels(index)
    assert check_labels(pd.RangeIndex(3)) == [0, 1, 2]
    assert check_labels(pd.Index([2.5, 1.0])) == [2.5, 1.0]
