"""Time series (issue 14) against the emulator over HTTP.

Phase A: the multi-temporal wrapper of :mod:`xasync.temporal`, posted as a plain Async API body,
its GeoTIFF and userdata.json read back from S3 and compared with the emulator's documented
scene values (``tests/emulator/emu_helpers.py`` re-implements the documented formula) and with
one single-scene request per interval.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xasync.evalscript import parse_outputs
from xasync.results import STATUS_COLUMNS, Results
from xasync.temporal import make_intervals, scene_counts, span, wrap_evalscript, wrapped_outputs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))
from emu_helpers import centres, s2_scene_dates, scene

UTC = timezone.utc
SEASON = ("2024-05-01", "2024-08-31")
BBOX = (13.0, 45.0, 13.01, 45.008)
SIZE = (20, 16)
# a polygon inside the bbox: pixels outside it have dataMask 0 (NaN after the wrapper)
POLY = {
    "type": "Polygon",
    "coordinates": [[[13.001, 45.001], [13.009, 45.0015], [13.0085, 45.007], [13.001, 45.001]]],
}
NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }
"""
TWO = """//VERSION=3
function setup() {
  return {input: [{bands: ["B04", "B08"], units: "DN"}],
          output: [{id: "red", bands: 1, sampleType: "UINT16"},
                   {id: "pair", bands: 2, sampleType: "UINT16"}]};
}
function evaluatePixel(s) { return {red: [s.B04], pair: [s.B04, s.B08]}; }
"""


def _token(emu) -> str:
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def _body(bucket, script, time_range, responses=("default",)):
    return {
        "input": {
            "bounds": {
                "bbox": list(BBOX),
                "geometry": POLY,
                "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
            },
            "data": [
                {
                    "type": "sentinel-2-l2a",
                    "dataFilter": {"timeRange": {"from": time_range[0], "to": time_range[1]}},
                }
            ],
        },
        "output": {
            "width": SIZE[0],
            "height": SIZE[1],
            "responses": [
                {
                    "identifier": r,
                    "format": {"type": "application/json" if r == "userdata" else "image/tiff"},
                }
                for r in responses
            ],
            "delivery": {
                "s3": {"url": f"s3://{bucket}/ts", "accessKey": "k", "secretAccessKey": "s"}
            },
        },
        "evalscript": script,
    }


def _run(emu, bucket, bodies):
    """POST every body, wait until each is finished, return the request ids."""
    with httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {_token(emu)}"}, timeout=15
    ) as api:
        ids = []
        for body in bodies:
            for _ in range(200):  # the concurrency limit answers 429: wait for a slot
                r = api.post("/api/v1/async/process", json=body)
                if r.status_code != 429:
                    break
                time.sleep(0.05)
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 120
        for rid in ids:
            while api.get(f"/api/v1/async/process/{rid}").status_code != 404:
                assert time.monotonic() < deadline, f"request {rid} still running"
                time.sleep(0.05)
    s3c = emu.s3.client()
    for rid in ids:
        listed = s3c.list_objects_v2(Bucket=bucket, Prefix=f"ts/{rid}/")
        names = {o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])}
        assert "error.json" not in names, s3c.get_object(Bucket=bucket, Key=f"ts/{rid}/error.json")[
            "Body"
        ].read()
    return ids


def _tif(emu, bucket, key):
    import rasterio
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options, skip_instance_cache=True)
    with rasterio.open(f"s3://{bucket}/{key}", opener=fs) as ds:
        return ds.read(), ds.dtypes[0]


def _userdata(emu, bucket, rid):
    raw = emu.s3.client().get_object(Bucket=bucket, Key=f"ts/{rid}/userdata.json")["Body"].read()
    return json.loads(raw)


def _inside():
    """Pixel centres inside POLY (where dataMask is 1), as the emulator decides it."""
    import shapely

    lon, lat = centres(BBOX, *SIZE)
    poly = shapely.geometry.shape(POLY)
    return shapely.intersects_xy(poly, lon, lat), lon, lat


def _documented_ndvi(intervals):
    """(interval, scene) NDVI stacks from the documented scene, with the scene dates."""
    _, lon, lat = _inside()
    out = []
    for iv in intervals:
        t0 = iv.start.tz_localize(UTC).to_pydatetime()
        t1 = pd.Timestamp(iv.time_range[1]).to_pydatetime()
        dates = s2_scene_dates(t0, t1)
        stack = [
            (scene("B08", lon, lat, d) - scene("B04", lon, lat, d))
            / (scene("B08", lon, lat, d) + scene("B04", lon, lat, d))
            for d in dates
        ]
        out.append((dates, np.array(stack)))
    return out


@pytest.fixture
def bucket_name(emu):
    name = f"ts-{np.random.default_rng().integers(1e9)}"
    emu.create_bucket(name)
    return name


def _wrap(script, intervals, reducer):
    outs = parse_outputs(script)
    return wrap_evalscript(script, outs, intervals, reducer), wrapped_outputs(outs, len(intervals))


def test_median_is_numpy_median_of_documented_scenes_with_userdata(emu, bucket_name):
    intervals = make_intervals(SEASON, "10D")
    assert len(intervals) == 13
    script, outs = _wrap(NDVI, intervals, "median")
    assert outs[0].bands == 13 and outs[0].sample_type == "FLOAT32"
    (rid,) = _run(
        emu, bucket_name, [_body(bucket_name, script, span(intervals), ("default", "userdata"))]
    )
    data, dtype = _tif(emu, bucket_name, f"ts/{rid}/default.tif")
    assert dtype == "float32" and data.shape == (13, SIZE[1], SIZE[0])
    inside, _, _ = _inside()
    assert inside.any() and (~inside).any()
    user = _userdata(emu, bucket_name, rid)
    documented = _documented_ndvi(intervals)
    # 5-day revisit, 10-day steps: 2 scenes each but the last (08-29..08-31: none)
    assert [len(dates) for dates, _ in documented] == [2] * 12 + [0]
    assert np.isnan(data[12]).all()
    for k, (dates, stack) in enumerate(documented[:12]):
        expected = np.median(stack, axis=0).astype(np.float32)
        np.testing.assert_allclose(data[k][inside], expected[inside], rtol=1e-6)
        assert np.isnan(data[k][~inside]).all()  # no valid scene outside the geometry
        assert user["intervals"][k]["scenes"] == [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in dates]
        assert user["intervals"][k]["from"] == intervals[k].start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert user["reducer"] == "median"
    assert user["intervals"][12]["scenes"] == []
    assert scene_counts(user, 13).tolist() == [2] * 12 + [0]


@pytest.mark.parametrize("reducer", ["mean", "min", "max", "first", "last", "count"])
def test_reducers_against_documented_scenes(emu, bucket_name, reducer):
    intervals = make_intervals(("2024-06-01", "2024-07-15"), "15D")  # 3 scenes per interval
    script, _ = _wrap(NDVI, intervals, reducer)
    (rid,) = _run(emu, bucket_name, [_body(bucket_name, script, span(intervals))])
    data, _ = _tif(emu, bucket_name, f"ts/{rid}/default.tif")
    inside, _, _ = _inside()
    pick = {
        "mean": lambda s: s.mean(axis=0),
        "min": lambda s: s.min(axis=0),
        "max": lambda s: s.max(axis=0),
        "first": lambda s: s[0],
        "last": lambda s: s[-1],
        "count": lambda s: np.full(s.shape[1:], float(len(s))),
    }[reducer]
    for k, (dates, stack) in enumerate(_documented_ndvi(intervals)):
        assert len(dates) == 3
        np.testing.assert_allclose(data[k][inside], pick(stack)[inside], rtol=1e-6)
        outside = data[k][~inside]
        assert (outside == 0).all() if reducer == "count" else np.isnan(outside).all()


def test_last_equals_one_most_recent_request_per_interval(emu, bucket_name):
    """reducer="last" = what a request over each interval alone returns (mostRecent)."""
    intervals = make_intervals(SEASON, "MS")
    script, _ = _wrap(NDVI, intervals, "last")
    bodies = [_body(bucket_name, script, span(intervals))]
    bodies += [_body(bucket_name, NDVI, iv.time_range) for iv in intervals]
    rid, *singles = _run(emu, bucket_name, bodies)
    data, _ = _tif(emu, bucket_name, f"ts/{rid}/default.tif")
    assert data.shape[0] == len(intervals) == 4
    for k, sid in enumerate(singles):
        single, _ = _tif(emu, bucket_name, f"ts/{sid}/default.tif")
        np.testing.assert_array_equal(data[k], single[0])  # NaN for NaN


def test_empty_interval_is_nan_and_multi_output_layout(emu, bucket_name):
    # 2024-06-06 has no Sentinel-2 scene in the documented calendar (scenes on 06-03, 06-08)
    day = datetime(2024, 6, 6, tzinfo=UTC)
    assert not s2_scene_dates(day, day.replace(hour=23, minute=59))
    intervals = make_intervals(None, [("2024-06-01", "2024-06-05"), ("2024-06-06", "2024-06-06")])
    script, outs = _wrap(TWO, intervals, "max")
    assert [(o.id, o.bands) for o in outs] == [("red", 2), ("pair", 4)]
    (rid,) = _run(
        emu, bucket_name, [_body(bucket_name, script, span(intervals), ("red", "pair", "userdata"))]
    )
    red, _ = _tif(emu, bucket_name, f"ts/{rid}/red.tif")
    pair, _ = _tif(emu, bucket_name, f"ts/{rid}/pair.tif")
    inside, lon, lat = _inside()
    when = datetime(2024, 6, 3, 10, tzinfo=UTC)  # the one scene of the first interval
    b4, b8 = scene("B04", lon, lat, when, dn=True), scene("B08", lon, lat, when, dn=True)
    np.testing.assert_array_equal(red[0][inside], b4[inside])
    np.testing.assert_array_equal(pair[0][inside], b4[inside])  # interval 0, band 0
    np.testing.assert_array_equal(pair[1][inside], b8[inside])  # interval 0, band 1
    assert np.isnan(red[1]).all() and np.isnan(pair[2:]).all()  # no scene on 06-06
    assert scene_counts(_userdata(emu, bucket_name, rid), 2).tolist() == [1, 0]


# --------------------------------------------------------------------------- phase B: process
FIELDS_TIME = ("2024-05-01", "2024-08-31")
NDVI_OUT = NDVI.replace("output: {bands: 1", 'output: {id: "ndvi", bands: 1')


def _fields(n: int = 2):
    import geopandas as gpd
    from shapely.geometry import Polygon

    # fields with a diagonal edge: part of each bbox is outside (dataMask 0 there)
    geoms = [
        Polygon([(x, 45.0), (x + 0.0025, 45.0), (x + 0.0025, 45.0018), (x + 0.0008, 45.0018)])
        for x in (13.0 + 0.004 * i for i in range(n))
    ]
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"field-{i}" for i in range(n)])


@pytest.fixture
def call(emu):
    import xasync

    root = emu.create_bucket(f"tsp-{np.random.default_rng().integers(1e9)}")
    client = xasync.Client.from_emulator(emu)
    base = dict(
        time=FIELDS_TIME,
        size=(10, 8),
        storage_options=emu.storage_options,
        client=client,
    )
    yield emu, root, base
    client.close()


def _row_inside(ds, geom):
    import shapely

    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    return shapely.intersects_xy(geom, lon, lat), lon, lat


def test_orbit_13_steps_known_before_delivery_one_request_per_field(call):
    emu, root, base = call
    gdf = _fields(2)
    expected = pd.date_range("2024-05-01", "2024-08-31", freq="10D")
    with emu.hold():
        results = gdf.xasync.process(NDVI_OUT, delivery=f"{root}/orbit", freq="10D", **base)
        ds = results[0]
        # known before anything is delivered
        assert ds["ndvi"].dims == ("time", "y", "x") and ds["ndvi"].dtype == np.float32
        assert list(ds.time.values) == list(expected.values) and ds.sizes["time"] == 13
        assert ds.time.dtype == np.dtype("datetime64[ns]")
        assert list(ds.time_end.values[:-1]) == list(expected.values[1:])
        assert ds.time_end.values[-1] == np.datetime64("2024-08-31T23:59:59")
        assert not results.done
    results.wait(timeout=120, progress=False)
    assert emu.stats["creates"] == 2  # one request per field
    status = results.status()
    assert (status["state"] == "done").all(), status
    documented = _documented_ndvi(make_intervals(FIELDS_TIME, "10D"))
    for i, geom in enumerate(gdf.geometry):
        ds = results[i]
        assert ds.scenes.values.tolist() == [len(d) for d, _ in documented] == [2] * 12 + [0]
        inside, lon, lat = _row_inside(ds, geom)
        assert inside.any() and (~inside).any()
        got = ds["ndvi"].values
        for k, (dates, _) in enumerate(documented):
            if not dates:
                assert np.isnan(got[k]).all()
                continue
            stack = np.array([_ndvi_at(lon, lat, d) for d in dates])
            want = np.median(stack, axis=0).astype(np.float32)
            np.testing.assert_allclose(got[k][inside], want[inside], rtol=1e-6)
            assert np.isnan(got[k][~inside]).all()


def _ndvi_at(lon, lat, date):
    b4, b8 = scene("B04", lon, lat, date), scene("B08", lon, lat, date)
    return (b8 - b4) / (b8 + b4)


def test_requests_one_per_field_and_interval_and_last_equals_orbit(call):
    emu, root, base = call
    gdf = _fields(2)
    orbit = gdf.xasync.process(
        NDVI_OUT, delivery=f"{root}/last", freq="10D", reducer="last", **base
    )
    orbit.wait(timeout=120, progress=False)
    assert emu.stats["creates"] == 2
    per = gdf.xasync.process(
        NDVI_OUT, delivery=f"{root}/per", freq="10D", temporal="requests", **base
    )
    assert len(per) == 2 and per[0].sizes["time"] == 13  # known before delivery
    per.wait(timeout=180, progress=False)
    assert emu.stats["creates"] == 2 + 2 * 13  # one per field and interval
    status = per.requests.status()  # one line per (row, interval) request
    assert len(status) == 26 and (status["state"] == "done").all()
    assert status.index.names == ["row", "time"]
    assert isinstance(per, Results)  # the same interface as the orbit's results
    rows = per.status()  # per row, indexed like the GeoDataFrame, as Results.status()
    assert list(rows.index) == list(gdf.index) and list(rows.columns) == STATUS_COLUMNS
    assert (rows["state"] == "done").all() and rows["finished"].notna().all()
    assert (
        rows["cost_pu"].sum() == pytest.approx(per.cost) == pytest.approx(status["cost_pu"].sum())
    )
    assert [len(ids) for ids in rows["request_id"]] == [13, 13]
    assert set(rows.loc["field-1", "request_id"]) == set(status.loc["field-1", "request_id"])
    assert per.done and per.wait(timeout=1, progress=False) is per
    for i in range(2):
        a, b = orbit[i], per[i]
        assert list(a.time.values) == list(b.time.values)
        np.testing.assert_array_equal(a["ndvi"].values, b["ndvi"].values)  # NaN for NaN
        assert np.isnan(a["ndvi"].values[12]).all()  # the last interval has no scene
    assert per["field-1"]["ndvi"].shape == (13, 8, 10)


def test_multiband_output_and_a_script_given_by_reference(call):
    emu, root, base = call
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options, skip_instance_cache=True)
    bucket = root.removeprefix("s3://")
    fs.pipe(f"{bucket}/scripts/two.js", TWO.encode())
    results = _fields(1).xasync.process(
        f"{root}/scripts/two.js",
        delivery=f"{root}/two",
        freq=[("2024-06-01", "2024-06-05"), ("2024-06-06", "2024-06-06")],
        reducer="max",
        **base,
    )
    ds = results[0]
    assert ds["red"].dims == ("time", "y", "x")
    assert ds["pair"].dims == ("time", "band", "y", "x") and ds.sizes["band"] == 2
    results.wait(timeout=60, progress=False)
    inside, lon, lat = _row_inside(ds, _fields(1).geometry.iloc[0])
    when = datetime(2024, 6, 3, 10, tzinfo=UTC)
    np.testing.assert_array_equal(
        ds["pair"].values[0, 1][inside], scene("B08", lon, lat, when, dn=True)[inside]
    )
    assert np.isnan(ds["red"].values[1]).all()
    assert ds.scenes.values.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"freq": "10 parsecs"}, "offset alias"),
        ({"freq": "10D", "temporal": "scenes"}, "temporal must be"),
        ({"freq": "10D", "reducer": "mode"}, "reducer must be"),
        ({"reducer": "max"}, "give freq="),
        ({"freq": "10D", "evalscript": NDVI_OUT.replace("//VERSION=3\n", "")}, "V3"),
        ({"freq": "10D", "data": ["sentinel-2-l2a", "sentinel-1-grd"]}, "data fusion"),
    ],
)
def test_bad_time_series_input_before_anything_is_paid(call, kwargs, match):
    from xasync.temporal import TemporalError

    emu, root, base = call
    script = kwargs.pop("evalscript", NDVI_OUT)
    with pytest.raises(TemporalError, match=match):
        _fields(1).xasync.process(script, delivery=f"{root}/bad", **base, **kwargs)
    assert emu.stats["create_calls"] == 0


def test_demo_season_cli(tmp_path):
    import os
    import re
    import subprocess

    out = tmp_path / "season"
    proc = subprocess.run(
        [sys.executable, "-m", "xasync.cli", "demo", "--season", "--fields", "3"]
        + ["--processing-seconds", "0.1", "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MPLBACKEND": "Agg"},
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(
        r"^(field-\d\d)\s+done\s+(\S+)\s+(\d+)\s+(\S+) \S+\s+(\S+)\s*$", proc.stdout, re.MULTILINE
    )
    assert [r[0] for r in rows] == ["field-01", "field-02", "field-03"], proc.stdout
    # 2024-04-01..09-30: 36 scenes of the 5-day calendar; the 10 PU minimum per field
    assert all(r[2] == "36" and float(r[1]) == 10.0 for r in rows)
    assert all(0.0 < float(r[4]) < 1.0 for r in rows)
    assert "3 requests created" in proc.stdout
    png = out / "ndvi-season.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_delivery_rebuilds_the_series(call):
    import xasync

    emu, root, base = call
    gdf = _fields(2)
    orbit = gdf.xasync.process(NDVI_OUT, delivery=f"{root}/re", freq="MS", **base)
    orbit.wait(timeout=60, progress=False)
    per = gdf.xasync.process(
        NDVI_OUT, delivery=f"{root}/re-per", freq="MS", temporal="requests", **base
    )
    per.wait(timeout=60, progress=False)
    creates = emu.stats["creates"]
    assert creates == 2 + 2 * 4

    again = xasync.open_delivery(f"{root}/re", storage_options=emu.storage_options)
    again.wait(timeout=60, progress=False)
    assert len(again) == 2
    for i in range(2):
        ds = again[i]
        assert ds["ndvi"].dims == ("time", "y", "x")
        assert list(ds.time.values) == list(orbit[i].time.values)
        np.testing.assert_array_equal(ds["ndvi"].values, orbit[i]["ndvi"].values)
        assert ds.scenes.values.tolist() == orbit[i].scenes.values.tolist() == [6, 6, 6, 6]
    # "requests": one Dataset per (field, interval) request, each with its interval as time
    reqs = xasync.open_delivery(f"{root}/re-per", storage_options=emu.storage_options)
    reqs.wait(timeout=60, progress=False)
    assert len(reqs) == 8
    stacked = xr.concat([reqs[j] for j in range(4)], dim="time")
    np.testing.assert_array_equal(stacked["ndvi"].values, per[0]["ndvi"].values)
    assert emu.stats["creates"] == creates  # re-attaching buys nothing


BANDS12 = """//VERSION=3
function setup() {
  return {input: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11",
                  "B12", "dataMask"],
          output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04)]; }
"""


def test_estimate_uses_the_scenes_the_emulator_charges(call):
    """orbit: the samples factor is the scenes of the whole range (one request per field);
    requests: the 10 PU minimum per interval. The emulator charges the same."""
    from xasync.estimate import estimate

    emu, root, base = call
    gdf = _fields(1)
    kw = {**base, "freq": "10D"}
    orbit_est = estimate(gdf, BANDS12, **kw)
    assert orbit_est.attrs["scenes"] == 24 and orbit_est.attrs["intervals"] == 13
    assert orbit_est["samples"].tolist() == [24.0] and orbit_est["requests"].size == 1
    per_est = estimate(gdf, BANDS12, temporal="requests", **kw)
    assert len(per_est) == 13 and per_est.attrs["total_pu"] == 13 * 10.0
    assert per_est.index.names == ["row", "time"]
    assert per_est.groupby(level=0)["estimated_pu"].sum().tolist() == [130.0]
    # bigger images are no longer at the minimum: 512 x 512 px, 12 bands / 3, FLOAT32 x2,
    # 24 scenes, x2/3 (estimated only: rendering it would take the emulator too long)
    big = estimate(gdf, BANDS12, **{**kw, "size": (512, 512)})
    assert big.attrs["total_pu"] == pytest.approx(1 * 4 * 2 * 24 * 2 / 3)

    results = gdf.xasync.process(BANDS12, delivery=f"{root}/cost", **kw)
    results.wait(timeout=120, progress=False)
    ids = results[0].encoding["xasync"]
    rid = results.status().iloc[0]["request_id"]
    copy = json.loads(
        emu.s3.client()
        .get_object(
            Bucket=root.removeprefix("s3://"),
            Key=f"{ids['row_url'].split('/', 3)[3]}/{rid}/request.json",
        )["Body"]
        .read()
    )
    assert copy["emulatorCostFactors"]["samples"] == 24
    charged = emu.stats["processing_units"]
    assert charged == pytest.approx(orbit_est.attrs["total_pu"]) == 10.0
    per = gdf.xasync.process(BANDS12, delivery=f"{root}/cost-per", temporal="requests", **kw)
    per.wait(timeout=120, progress=False)
    assert emu.stats["processing_units"] - charged == pytest.approx(130.0)
    assert len(per[0].encoding["xasync"]["row_urls"]) == 13


def test_budget_counts_the_requests_of_a_series(call):
    from xasync.errors import BudgetExceeded

    emu, root, base = call
    gdf = _fields(2)
    with pytest.raises(BudgetExceeded) as info:  # 2 fields x 13 intervals x 10 PU = 260
        gdf.xasync.process(
            NDVI_OUT, delivery=f"{root}/b", freq="10D", temporal="requests", max_pu=100, **base
        )
    assert info.value.estimate_pu == 260.0 and info.value.requests == 26
    assert emu.stats["create_calls"] == 0  # nothing bought
    results = gdf.xasync.process(NDVI_OUT, delivery=f"{root}/b", freq="10D", max_pu=25, **base)
    assert results.status()["estimated_pu"].tolist() == [10.0, 10.0]
    results.wait(timeout=60, progress=False)
    assert results.cost == 20.0 and emu.stats["creates"] == 2
