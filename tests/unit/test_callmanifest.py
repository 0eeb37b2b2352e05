"""Manifest rows written from templates parse to the dicts the row objects give."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from xasync import manifests
from xasync.callmanifest import manifest_row_texts
from xasync.manifests import encode_label, read_manifests, write_manifest_text
from xasync.planned import plan_call, source_to_dict
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B04"], output: [{id: "a", bands: 1, sampleType: "UINT16", nodata: 0}]};
}
function evaluatePixel(s) { return {a: [s.B04]}; }
"""
TIME = ("2023-06-01", "2023-06-30")
LABELS = [
    7,
    np.int64(3),
    'r\u00e9"w',
    pd.Timestamp("2024-01-02T03:04:05Z"),
    ("a", 2),
    dt.date(2024, 5, 6),
    2.5,
]


def frame() -> gpd.GeoDataFrame:
    geoms = [box(14 + 0.001 * i, 46, 14.0005 + 0.001 * i, 46.0004) for i in range(len(LABELS))]
    geoms[-1] = box(14.2, 46.1, 14.24, 46.13)  # a row for tiles
    index = pd.Index(LABELS, dtype=object)
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=index)


def expected(specs, plans, labels, planned=None):
    rows = []
    for i, (spec, plan, label) in enumerate(zip(specs, plans, labels, strict=True)):
        row = {
            "position": i,
            "plan": plan.to_dict(),
            "label": encode_label(label),
            "body": spec.canonical_body(),
        }
        if planned is not None:
            row["sources"] = [source_to_dict(s) for s in planned.sources[i]]
        rows.append(row)
    return rows


def test_row_texts_parse_to_the_row_dicts():
    gdf = frame()
    for mask, pack in ((False, False), (True, True)):
        kw = {"time": TIME, "resolution": 10, "crs": "utm", "mask": mask, "tiled": True}
        specs = build_specs(gdf, ES, delivery="s3://bkt/m", **kw)
        plans = [s.read_plan() for s in specs]
        planned = plan_call(specs, pack=pack, max_request_px=200)
        assert planned is not None and len(planned.requests) < len(specs) + 4
        texts = manifest_row_texts(specs, plans, list(gdf.index), sources=planned.sources)
        got = [json.loads(t) for t in texts]
        assert got == json.loads(json.dumps(expected(specs, plans, gdf.index, planned)))
        plain = manifest_row_texts(specs, plans, list(gdf.index))
        assert [json.loads(t) for t in plain] == json.loads(
            json.dumps(expected(specs, plans, gdf.index))
        )


def test_big_manifests_are_gzipped_and_read_back(s3fs_fs, bucket, monkeypatch):
    root = f"s3://{bucket}/runs/manifest"
    rows = [
        json.dumps({"plan": {"token": f"t{i}", "row_url": "u"}, "position": i})
        for i in range(2500)  # compressed in batches of 1000: two and a part
    ]
    monkeypatch.setattr(manifests, "GZIP_ABOVE_BYTES", 1000)
    big = write_manifest_text(s3fs_fs, root, "call-big", rows)
    small = write_manifest_text(s3fs_fs, root, "call-small", rows[:3])
    assert big.endswith("call-big.json.gz") and small.endswith("call-small.json")
    assert gzip.decompress(s3fs_fs.cat_file(big))[:1] == b"{"
    docs = {d["call_token"]: d for d in read_manifests(s3fs_fs, root)}
    assert [r["position"] for r in docs["call-big"]["rows"]] == list(range(2500))
    assert docs["call-small"]["rows"][2] == {"plan": {"token": "t2", "row_url": "u"}, "position": 2}
    assert docs["call-big"]["version"] == manifests.MANIFEST_VERSION


def test_rows_in_chunks_are_the_same_rows(monkeypatch):
    from xasync import callmanifest

    gdf = frame()
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "tiled": True}
    specs = build_specs(gdf, ES, delivery="s3://bkt/m", **kw)
    plans = [s.read_plan() for s in specs]
    planned = plan_call(specs, pack=True, max_request_px=200)
    whole = manifest_row_texts(specs, plans, list(gdf.index), sources=planned.sources)
    monkeypatch.setattr(callmanifest, "CHUNK_ROWS", 3)
    chunked = callmanifest.iter_manifest_rows(
        specs, plans, list(gdf.index), sources=planned.sources
    )
    assert list(chunked) == whole
