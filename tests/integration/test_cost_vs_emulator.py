"""The estimate equals the cost the emulator writes into each request copy, shape by shape.

Each case is built with :func:`xasync.request.build_specs`, estimated with
:func:`xasync.estimate.estimate_specs` (no network), then sent to the emulator over HTTP (token,
create, status until 404). The cost is read from the request copy the way the client reads it
(:func:`xasync.delivery.probe_rows`), and the emulator's own PU counter must equal the sum.
The emulator computes its cost separately, from the same published rules (spec section 11).
"""

from __future__ import annotations

import time
import uuid

import geopandas as gpd
import httpx
import pytest
import s3fs
from shapely.geometry import box

from xasync._contract import API_PATH_LEGACY
from xasync.delivery import probe_rows
from xasync.estimate import estimate_specs
from xasync.request import build_specs

TIME = ("2023-06-01", "2023-06-30")
WAIT_LIMIT_S = 120.0
FIELD = box(500_000, 5_100_000, 500_640, 5_100_480)  # a field in UTM 33N; size= sets the pixels

S2_13 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _script(bands, outputs):
    """An evalscript with these input bands and ``[(id, n_bands, sampleType), ...]`` outputs."""
    first = next(b for b in bands if b != "dataMask") if len(bands) > 1 else bands[0]
    outs = ", ".join(f"{{id: '{i}', bands: {n}, sampleType: '{t}'}}" for i, n, t in outputs)
    ret = ", ".join(f"{i}: [{', '.join(['v'] * n)}]" for i, n, _ in outputs)
    return (
        "//VERSION=3\n"
        f"function setup() {{ return {{input: [{{bands: {bands!r}}}], output: [{outs}]}}; }}\n"
        f"function evaluatePixel(samples) {{ var v = samples.{first}; return {{{ret}}}; }}\n"
    )


S1_DATA = {"type": "sentinel-1-grd", "dataFilter": {}}
S1_RTC_SPECKLE = {
    **S1_DATA,
    "processing": {
        "orthorectify": True,
        "backCoeff": "GAMMA0_TERRAIN",
        "speckleFilter": {"type": "LEE", "windowSizeX": 3, "windowSizeY": 3},
    },
}
TWO_OUT = [("a", 1, "FLOAT32"), ("b", 2, "UINT8")]
L1C = {"data": "sentinel-2-l1c"}  # the 13 bands (L2A has no B10)

# The emulator renders every pixel of every band (about 0.5 s per 512 x 512 px band here), so
# the shapes are small and the PU above the minimum come from the factors that cost no pixels.
# id, evalscript, (width, height), extra build_specs keywords, the hand-computed estimate.
CASES = [
    # 2400 px: 0.01 x 3/3 x 1 = 0.01 -> 10
    ("tiny-min", _script(["B02", "B03", "B04"], [("default", 3, "UINT8")]), (60, 40), {}, 10.0),
    # 9900 px (< 10000, no 2/3): 0.0378 x 13/3 x 2 = 0.327 -> 10
    ("under-10000px-13-f32", _script(S2_13, [("default", 1, "FLOAT32")]), (99, 100), L1C, 10.0),
    # exactly 512 x 512: 1 x 3/3 x 2 x 2/3 = 1.33 -> 10
    ("512sq-rgb-f32", _script(S2_13[1:4], [("default", 3, "FLOAT32")]), (512, 512), {}, 10.0),
    # only dataMask counts as 1 band: 1.144 x 1/3 x 1 x 2/3 = 0.25 -> 10
    ("only-datamask", _script(["dataMask"], [("default", 1, "UINT8")]), (600, 500), {}, 10.0),
    # 1.335 x 4/3 x 1 x 2/3 = 1.19 -> 10
    ("uint16-4-bands", _script(S2_13[:4], [("default", 4, "UINT16")]), (700, 500), {}, 10.0),
    # 13 bands + dataMask (not counted), FLOAT32 + UINT8 outputs (largest factor once):
    # 768 x 640 = 1.875 x 13/3 x 2 x 2/3 = 10.83
    (
        "13-bands-datamask-two-outputs",
        _script([*S2_13, "dataMask"], TWO_OUT),
        (768, 640),
        L1C,
        1.875 * 13 / 3 * 2 * 2 / 3,
    ),
    # S1 orthorectified, VV + VH (+ dataMask), FLOAT32: 1536 x 1024 = 6 x 2/3 x 2 x 2 x 2/3 = 10.67
    (
        "s1-orthorectify",
        _script(["VV", "VH", "dataMask"], [("default", 2, "FLOAT32")]),
        (1536, 1024),
        {"data": [{**S1_DATA, "processing": {"orthorectify": True}}]},
        6 * 2 / 3 * 2 * 2 * 2 / 3,
    ),
    # S1 terrain correction (x2.5 instead of x2) + speckle x2, FLOAT32 + UINT8 outputs:
    # 1024 x 1024 = 4 x 2/3 x 2 x 2.5 x 2 x 2/3 = 17.78
    (
        "s1-rtc-speckle",
        _script(["VV", "VH"], TWO_OUT),
        (1024, 1024),
        {"data": [S1_RTC_SPECKLE]},
        4 * 2 / 3 * 2 * 2.5 * 2 * 2 / 3,
    ),
    # the same with only the UINT8 output requested: 4 x 2/3 x 1 x 5 x 2/3 = 8.89 -> 10
    (
        "s1-rtc-speckle-uint8-only",
        _script(["VV", "VH"], TWO_OUT),
        (1024, 1024),
        {"data": [S1_RTC_SPECKLE], "responses": ["b"]},
        10.0,
    ),
    # fusion of 3 collections (all local): 1024 x 1024 = 4 x 2/3 x 2 x 3 x 2/3 = 10.67
    (
        "fusion-3-collections",
        _script(["B04", "VV"], [("default", 1, "FLOAT32")]),
        (1024, 1024),
        {
            "data": [
                {"type": "sentinel-2-l2a", "id": "l2a"},
                {**S1_DATA, "id": "s1"},
                {"type": "landsat-ot-l2", "id": "l8"},
            ]
        },
        4 * 2 / 3 * 2 * 3 * 2 / 3,
    ),
]


def _token(emu, http: httpx.Client) -> str:
    r = http.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    r.raise_for_status()
    return r.json()["access_token"]


def _run(emu, http: httpx.Client, bodies: list[dict]) -> None:
    """Create the requests in waves no larger than the concurrency limit; wait for each 404."""
    url = f"{emu.base_url}{API_PATH_LEGACY}"
    wave = max(1, emu.concurrency_limit)
    for start in range(0, len(bodies), wave):
        pending = set()
        for body in bodies[start : start + wave]:
            r = http.post(url, json=body)
            assert r.status_code == 200, r.text
            pending.add(r.json()["id"])
        deadline = time.monotonic() + WAIT_LIMIT_S
        while pending:
            assert time.monotonic() < deadline, f"requests {pending} still running"
            time.sleep(0.1)
            for rid in list(pending):
                s = http.get(f"{url}/{rid}")
                if s.status_code == 404:
                    pending.discard(rid)
                else:
                    assert s.status_code == 200, s.text


def test_estimate_equals_the_cost_in_each_request_copy(emu):
    bucket = emu.create_bucket(f"cost-{uuid.uuid4().hex[:10]}").removeprefix("s3://")
    so = emu.storage_options
    gdf = gpd.GeoDataFrame(geometry=[FIELD], crs=32633)
    cases, specs = [], []
    for case_id, script, size, extra, _ in CASES:
        kw = {"data": "sentinel-2-l2a", **extra}
        built = build_specs(
            gdf, script, time=TIME, size=size, delivery=f"s3://{bucket}/{case_id}", **kw
        )
        cases += [case_id] * len(built)
        specs += built
    assert len(set(cases)) >= 10
    estimated = estimate_specs(specs, cases)  # before anything is sent
    hand = {case_id: expected for case_id, *_, expected in CASES}
    assert estimated["estimated_pu"].to_dict() == pytest.approx(hand, rel=1e-12)

    with httpx.Client(timeout=60.0) as http:
        http.headers["Authorization"] = f"Bearer {_token(emu, http)}"
        _run(
            emu,
            http,
            [s.body({"accessKey": so["key"], "secretAccessKey": so["secret"]}) for s in specs],
        )

    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**so)
    delivered = probe_rows(fs, {s.row_url: s.responses for s in specs})
    charged = {case: delivered[s.row_url].cost for case, s in zip(cases, specs, strict=True)}
    failed = {
        case: (delivered[s.row_url].state, delivered[s.row_url].error)
        for case, s in zip(cases, specs, strict=True)
        if delivered[s.row_url].state != "done"
    }
    assert not failed, failed
    mismatches = {
        case: (round(float(estimated.loc[case, "estimated_pu"]), 4), charged[case])
        for case in cases
        if charged[case] is None
        or charged[case] != pytest.approx(float(estimated.loc[case, "estimated_pu"]), rel=1e-9)
    }
    assert not mismatches, f"(estimate, emulator) per case: {mismatches}"
    assert emu.stats["processing_units"] == pytest.approx(estimated.attrs["total_pu"], rel=1e-6)
    # the matrix covers both sides of the minimum
    assert (estimated["estimated_pu"] == 10.0).sum() >= 5
    assert (estimated["estimated_pu"] > 10.0).sum() >= 4
