"""Pack plans are pinned: the same rows give the same packs and pack tokens in every version.

A pack's token is what a user bought with ``pack=True``: a re-run (or a later version of
xasync) that grouped the same rows differently would buy them again. These digests were
computed by the planner before it was vectorised (commit 430c69f) and must never change.
"""

from __future__ import annotations

import hashlib
import json
import random

import geopandas as gpd
import pytest
from shapely.geometry import box

from xasync.grid import PixelGrid
from xasync.planned import plan_call, plan_specs, source_to_dict
from xasync.planner import PackItem, default_cost, pack_grids
from xasync.request import build_specs

ES = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: [{id: "ndvi", bands: 1, sampleType: "FLOAT32"}]};
}
function evaluatePixel(s) { return {ndvi: [0]}; }
"""
TIME = ("2023-06-01", "2023-06-30")
ROOT = "s3://bkt/pinned"

#: Cluster centres (lon, lat): two in UTM zone 33, one in zone 32.
CENTRES = ((14.0, 46.0), (14.3, 46.2), (8.6, 47.2))


def clustered_frame(n: int = 420) -> gpd.GeoDataFrame:
    """Fields of 20-400 m in three clusters, a few duplicates and a few big ones (seeded)."""
    rng = random.Random(17)
    geoms = []
    for i in range(n):
        lon, lat = CENTRES[i % len(CENTRES)]
        x = lon + rng.uniform(0, 0.06)
        y = lat + rng.uniform(0, 0.04)
        w, h = rng.uniform(0.0003, 0.005), rng.uniform(0.0002, 0.0035)
        if i % 50 == 7:  # a big field (over 1.5 km): its union with neighbours may cost more
            w, h = 0.03, 0.02
        geoms.append(box(x, y, x + w, y + h))
    geoms += [geoms[3], geoms[10], geoms[3]]  # identical rows share one member slot
    return gpd.GeoDataFrame({"n": range(len(geoms))}, geometry=geoms, crs=4326)


def _digest(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def plan_digest(planned) -> tuple[int, str]:
    doc = {
        "tokens": [s.token for s in planned.requests],
        "row_requests": [list(r) for r in planned.row_requests],
        "sources": [[source_to_dict(s) for s in src] for src in planned.sources],
    }
    return len(planned.requests), _digest(doc)


#: ``pack_max_px-max_request_px[-rows kept alone]`` -> (requests, digest of tokens, row
#: requests and sources).
PINNED_PLANS = {
    "2500-10000": (3, "9bd7e23e2abac47bf422024b005ece1db61c478c46c0e058f2544bb842941c96"),
    "300-10000": (18, "2f03f13bfeb5580f068700b9fda62729e6c87db2d1c082bd129f837d6f260f15"),
    "60-10000": (182, "f5ec2e762efba1eebb83e4a0a8a6ea987be2c04fee27022097b54452b081891a"),
    "300-150": (80, "33170a9f1f4567463d5a0a31470dc2621a8291e48a929f4a6252a3c838a3c3dc"),
    "2500-10000-alone": (8, "c47105493d1e89b82704719e048a3bee3be5b659f873dc8d1ede8a6baef8e86b"),
}


@pytest.mark.parametrize("case", sorted(PINNED_PLANS))
def test_pack_plans_of_clustered_fields_are_pinned(case):
    cap, max_request_px, *alone = case.split("-")
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": ROOT, "tiled": True}
    specs = build_specs(clustered_frame(), ES, **kw)
    if alone:
        planned = plan_specs(specs, pack=True, keep_alone={0, 5, 6, 200, 421})
    else:
        planned = plan_call(
            specs, pack=True, pack_max_px=int(cap), max_request_px=int(max_request_px)
        )
    assert plan_digest(planned) == PINNED_PLANS[case]


def synthetic_items(n: int = 600) -> list[PackItem]:
    """Snapped fields of two keys and two CRSs, some unsnapped, big or identical (seeded)."""
    rng = random.Random(5)
    items = []
    for i in range(n):
        res = 10.0 if i % 9 else 20.0
        kx, ky = rng.randrange(-3000, 3000), rng.randrange(500_000, 506_000)
        w, h = rng.randrange(1, 120), rng.randrange(1, 120)
        if i % 97 == 5:
            w = 700  # wider than the cap below: alone
        bbox = (kx * res, ky * res, (kx + w) * res, (ky + h) * res)
        if i % 61 == 3:
            bbox = (bbox[0] + 0.37, bbox[1], bbox[2] + 0.37, bbox[3])  # not snapped: alone
        key = "a" if i % 4 else "b"
        epsg = 32633 if i % 5 else 32634
        items.append(PackItem(key, PixelGrid(epsg, bbox, w, h), f"{i % 577}".encode()))
    items += [items[11], items[12], items[11]]
    return items


def _packs_doc(packs) -> list:
    return [[p.key, p.grid.epsg, list(p.grid.bbox), list(p.members), p.windows] for p in packs]


def _steep_cost(key: str, width: int, height: int) -> float:
    return max(10.0, width * height / 4000.0) + (0.5 if key == "b" else 0.0)


#: (max_px, cost, MAX_PACK_MEMBERS) -> (packs, digest of their keys, grids, members, windows).
PINNED_SYNTHETIC = {
    "default-600-500": (253, "39b25168ceb773c7d1c76cb634af24114948816bd3caf12786ed541622bea60a"),
    "steep-600-500": (349, "d7317b5ac06296650808249171b63499f9abe3e43152274332c1f3982a8be2f2"),
    "default-400-7": (340, "f2ad08aaee359fa7ca86510fe18f5ebd5010dfb036b22357e87a638a71e198e1"),
}


@pytest.mark.parametrize("case", sorted(PINNED_SYNTHETIC))
def test_pack_grids_of_synthetic_items_are_pinned(case, monkeypatch):
    from xasync import packing

    cost_name, max_px, members = case.split("-")
    monkeypatch.setattr(packing, "MAX_PACK_MEMBERS", int(members))
    cost = {"default": default_cost, "steep": _steep_cost}[cost_name]
    packs = pack_grids(synthetic_items(), max_px=int(max_px), cost=cost)
    assert (len(packs), _digest(_packs_doc(packs))) == PINNED_SYNTHETIC[case]
