"""Requests of an earlier call rebuilt exactly from its manifest rows (no network)."""

from __future__ import annotations

import json

import pytest
from integration._packs import pack_fields as _fields

from xasync.callmanifest import manifest_row_texts
from xasync.planned import plan_specs
from xasync.request import build_specs
from xasync.reuse_rebuild import member_geometries, rebuild
from xasync.specrows import read_plans

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")


def _call(mask: bool, bounds: str = "geometry"):
    """The specs, plan and manifest rows of a packed call of the 12 fields."""
    specs = build_specs(
        _fields(),
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery="s3://bucket/root",
        mask=mask,
        bounds=bounds,
        tiled=True,
    )
    planned = plan_specs(specs, pack=True, pack_max_px=400)
    labels = [s.label for s in specs]
    texts = manifest_row_texts(specs, read_plans(specs), labels, sources=planned.sources)
    return specs, planned, {"rows": [json.loads(t) for t in texts]}


@pytest.mark.parametrize("mask", [True, False])
def test_every_pack_is_rebuilt_exactly_from_any_of_its_rows(mask):
    specs, planned, manifest = _call(mask)
    packs = {r.token: r for r in planned.requests}
    members = member_geometries([manifest], set(packs))
    assert set(members) == set(packs)
    for i, spec in enumerate(specs):
        (source,) = planned.sources[i]
        got = rebuild(spec, source, members)
        assert got is not None
        assert (got.token, got.row_url, got.grid) == (source.token, source.row_url, source.grid)
        assert got.body() == packs[source.token].body()


def test_a_pack_with_a_member_missing_from_the_manifests_is_not_rebuilt():
    specs, planned, manifest = _call(True)
    (source,) = planned.sources[0]
    manifest["rows"] = [
        row for row in manifest["rows"] if row["plan"]["token"] != specs[1].token
    ]  # row 1 shares row 0's pack (the first cluster is one pack)
    assert planned.sources[1][0].token == source.token
    members = member_geometries([manifest], {source.token})
    assert rebuild(specs[0], source, members) is None


def test_a_member_whose_geometry_cannot_be_read_leaves_its_pack_out():
    _specs, planned, manifest = _call(False)
    (source,) = planned.sources[0]
    manifest["rows"][0]["body"]["input"]["bounds"].pop("geometry")
    assert source.token not in member_geometries([manifest], {source.token})


def test_with_bounds_bbox_any_row_of_a_pack_rebuilds_it_without_the_manifest():
    specs, planned, _manifest = _call(False, bounds="bbox")
    for i, spec in enumerate(specs):
        (source,) = planned.sources[i]
        got = rebuild(spec, source, {})
        assert got is not None and got.token == source.token
