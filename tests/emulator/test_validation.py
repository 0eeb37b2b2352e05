"""Bad create bodies get 400 COMMON_BAD_PAYLOAD naming the field, and nothing is accepted."""

from __future__ import annotations

import copy

import pytest
from emu_helpers import LEGACY, SIMPLE_SCRIPT, keys, make_body, wait_gone


def _mutate(body: dict, path: str, value) -> dict:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return body


_DELETE = object()

CASES = {
    "20000 px wide": ("output.width", 20000, "output.width"),
    "0 px high": ("output.height", 0, "output.height"),
    "3-number bbox": ("input.bounds.bbox", [13.0, 45.0, 13.1], "input.bounds.bbox"),
    "inverted bbox": ("input.bounds.bbox", [13.1, 45.0, 13.0, 45.1], "input.bounds.bbox"),
    "bad crs": ("input.bounds.properties.crs", "EPSG:4326", "input.bounds.properties.crs"),
    "unknown epsg": (
        "input.bounds.properties.crs",
        "http://www.opengis.net/def/crs/EPSG/0/999999",
        "input.bounds.properties.crs",
    ),
    "no delivery": ("output.delivery", _DELETE, "output.delivery"),
    "no delivery keys": (
        "output.delivery.s3",
        {"url": "s3://b-x/p"},
        "output.delivery.s3",
    ),
    "not an s3 url": (
        "output.delivery.s3.url",
        "https://example.com/x",
        "output.delivery.s3.url",
    ),
    "bare date": (
        "input.data.0.dataFilter.timeRange.from",
        "2023-06-01",
        "input.data[0].dataFilter.timeRange.from",
    ),
    "from after to": (
        "input.data.0.dataFilter.timeRange.from",
        "2024-01-01T00:00:00Z",
        "input.data[0].dataFilter.timeRange",
    ),
    "unknown collection": ("input.data.0.type", "sentinel-9", "input.data[0].type"),
    "empty data": ("input.data", [], "input.data"),
    "png is accepted but gif is not": (
        "output.responses.0.format.type",
        "image/gif",
        "output.responses[0].format.type",
    ),
    "no evalscript": ("evalscript", _DELETE, "evalscript"),
    "no bounds": ("input.bounds.bbox", _DELETE, "input.bounds"),
    "geometry not a polygon": (
        "input.bounds.geometry",
        {"type": "Point", "coordinates": [13, 45]},
        "input.bounds.geometry",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_body_is_400_naming_the_field(emu, api, out_bucket, case):
    path, value, field = CASES[case]
    body = _mutate(make_body(out_bucket), path, value)
    r = api.post(LEGACY, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "COMMON_BAD_PAYLOAD"
    assert err["reason"] == "Bad Request"
    assert err["message"].startswith(field), err["message"]
    assert emu.stats["creates"] == 0
    assert emu.stats["bad_requests"] == 1
    assert keys(emu.s3.client(), out_bucket) == set()


def test_both_and_neither_size_pairs(api, out_bucket):
    both = make_body(out_bucket)
    both["output"].update(resx=0.001, resy=0.001)
    neither = make_body(out_bucket)
    del neither["output"]["width"], neither["output"]["height"]
    for body in (both, neither):
        r = api.post(LEGACY, json=body)
        assert r.status_code == 400
        assert "width/height or resx/resy" in r.json()["error"]["message"]


def test_size_limit_applies_after_resolution(api, out_bucket):
    # 0.1 degree at 1e-5 degree/px = 10000 px: allowed; at 0.9e-5: 11111 px, rejected.
    ok = make_body(out_bucket, bbox=(13.0, 45.0, 13.1, 45.0001), res=(1e-5, 1e-5))
    # validated only: use a missing evalscript reference so that nothing runs
    r = api.post(
        LEGACY, json=make_body(out_bucket, bbox=(13.0, 45.0, 13.1, 45.0001), res=(0.9e-5, 1e-5))
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("output.width")
    assert "11111" in r.json()["error"]["message"]
    ok["evalscript"] = "function setup(){ throw new Error('validated only'); }"
    assert api.post(LEGACY, json=ok).status_code == 200


def test_missing_bucket_is_400(api):
    r = api.post(LEGACY, json=make_body("no-such-bucket-here"))
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("output.delivery.s3.url")
    assert "no-such-bucket-here" in r.json()["error"]["message"]


def test_empty_and_non_json_bodies(api):
    r = api.post(LEGACY, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.post(LEGACY, json={})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Request body should be non-empty."


def test_evalscript_reference_read_from_bucket(emu, api, out_bucket, s3c):
    s3c.put_object(Bucket=out_bucket, Key="scripts/s.js", Body=SIMPLE_SCRIPT.encode())
    body = make_body(out_bucket)
    del body["evalscript"]
    ref = {
        "s3": {"url": f"s3://{out_bucket}/scripts/s.js", "accessKey": "k", "secretAccessKey": "s"}
    }
    body["evalscriptReference"] = ref
    r = api.post(LEGACY, json=body)
    assert r.status_code == 200, r.text
    rid = r.json()["id"]
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket)
    body["evalscriptReference"] = {"s3": {"url": f"s3://{out_bucket}/scripts/missing.js"}}
    r = api.post(LEGACY, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("evalscriptReference.s3.url")
    body["evalscript"] = SIMPLE_SCRIPT
    body["evalscriptReference"] = ref
    r = api.post(LEGACY, json=body)
    assert r.status_code == 400
    assert "exactly one" in r.json()["error"]["message"]
