"""The planner: tiles cover a row exactly, packs are deterministic, cheaper, and line up."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xasync.cost import area_factor, async_pu
from xasync.errors import ValidationError
from xasync.grid import PixelGrid
from xasync.planner import (
    PackItem,
    check_plan_options,
    default_cost,
    pack_grids,
    plan_rows,
    sub_grid,
    tile_grid,
    tile_windows,
    total_cost,
)

# --------------------------------------------------------------------------- tiles


def _coverage(shape, windows):
    hits = np.zeros(shape, dtype=np.int32)
    for r, c, h, w in windows:
        hits[r : r + h, c : c + w] += 1
    return hits


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(1, 2000),
    width=st.integers(1, 2000),
    max_side=st.integers(1, 700),
)
def test_tile_windows_cover_the_grid_once_within_the_size_cap(height, width, max_side):
    if -(-height // max_side) * -(-width // max_side) > 400:
        max_side = max(max_side, max(height, width) // 10 + 1)  # keep the example small
    wins = tile_windows(height, width, max_side)
    assert all(h <= max_side and w <= max_side and h > 0 and w > 0 for _, _, h, w in wins)
    assert (_coverage((height, width), wins) == 1).all()  # union = grid, no overlap
    assert len(wins) == -(-height // max_side) * -(-width // max_side)  # as few as possible


@settings(max_examples=100, deadline=None)
@given(
    kx=st.integers(-50_000, 50_000),
    ky=st.integers(-50_000, 50_000),
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    res=st.sampled_from([10.0, 20.0, 60.0, 0.5, 0.0001, 30.0]),
    max_side=st.integers(50, 1000),
)
def test_tile_transforms_are_exact_sub_windows(kx, ky, width, height, res, max_side):
    grid = PixelGrid(
        32633, (kx * res, ky * res, (kx + width) * res, (ky + height) * res), width, height
    )
    t = grid.transform
    tiles = tile_grid(grid, max_side)
    assert (_coverage(grid.shape, [tl.window for tl in tiles]) == 1).all()
    for tile in tiles:
        r, c, h, w = tile.window
        assert tile.grid.shape == (h, w) and tile.grid.epsg == grid.epsg
        tt = tile.grid.transform
        # same pixel size and origin on the row's pixel lines (float: a few ulps of the extent)
        tol = 1e-9 * res
        assert tt.a == pytest.approx(t.a, rel=1e-12, abs=0) and tt.e == pytest.approx(
            t.e, rel=1e-12
        )
        assert abs(tt.c - (t.c + c * t.a)) <= tol + 1e-15 * abs(t.c)
        assert abs(tt.f - (t.f + r * t.e)) <= tol + 1e-15 * abs(t.f)
        # pixel centres of the tile are the row's, shifted by the window
        np.testing.assert_allclose(
            tile.grid.x_coords(), grid.x_coords()[c : c + w], rtol=1e-13, atol=1e-9 * res
        )
        np.testing.assert_allclose(
            tile.grid.y_coords(), grid.y_coords()[r : r + h], rtol=1e-13, atol=1e-9 * res
        )


def test_tiles_of_an_integer_resolution_grid_are_bit_exact():
    grid = PixelGrid(32633, (500000.0, 4000000.0, 507000.0, 4005000.0), 700, 500)
    tiles = tile_grid(grid, 300)
    assert [tl.window for tl in tiles] == [
        (0, 0, 250, 234),
        (0, 234, 250, 233),
        (0, 467, 250, 233),
        (250, 0, 250, 234),
        (250, 234, 250, 233),
        (250, 467, 250, 233),
    ]
    assert [tl.index for tl in tiles] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for tl in tiles:
        r, c, h, w = tl.window
        assert tl.grid.transform.a == 10.0 and tl.grid.transform.e == -10.0
        assert tl.grid.transform.c == 500000.0 + 10.0 * c
        assert tl.grid.transform.f == 4005000.0 - 10.0 * r
        assert (tl.grid.x_coords() == grid.x_coords()[c : c + w]).all()
        assert (tl.grid.y_coords() == grid.y_coords()[r : r + h]).all()


def test_a_grid_that_fits_is_its_own_single_tile():
    grid = PixelGrid(4326, (0.1, 0.2, 0.7, 0.9), 60, 70)
    (tile,) = tile_grid(grid, 70)
    assert tile.grid == grid and tile.window == (0, 0, 70, 60)
    assert sub_grid(grid, (0, 0, 70, 60)) == grid


def test_sub_grid_rejects_windows_outside_the_grid():
    grid = PixelGrid(4326, (0, 0, 1, 1), 10, 10)
    for win in [(0, 0, 11, 1), (-1, 0, 1, 1), (5, 5, 6, 1), (0, 0, 0, 3)]:
        with pytest.raises(ValidationError):
            sub_grid(grid, win)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_request_px": 0},
        {"max_request_px": 10001},
        {"max_request_px": 300.0},
        {"max_request_px": True},
        {"pack": "yes"},
        {"pack": True, "pack_max_px": 0},
        {"pack": True, "pack_max_px": 10001},
    ],
)
def test_bad_plan_options_are_typed_errors(kwargs):
    with pytest.raises(ValidationError):
        check_plan_options(**kwargs)


def test_plan_options_defaults():
    assert check_plan_options() == (10000, False, 2500)
    # a pack is a request: its cap is at most max_request_px
    assert check_plan_options(1000, True, 2500) == (1000, True, 1000)


# --------------------------------------------------------------------------- packs

RES = 10.0


def _field(kx, ky, w, h, key="k", epsg=32633, tag=None):
    grid = PixelGrid(epsg, (kx * RES, ky * RES, (kx + w) * RES, (ky + h) * RES), w, h)
    return PackItem(key, grid, tag if tag is not None else f"{kx},{ky},{w},{h}".encode())


def _two_clusters():
    a = [_field(50_000 + 30 * i, 400_000 + 17 * (i % 3), 10 + i, 8 + i) for i in range(6)]
    b = [_field(60_000 + 25 * i, 410_000 - 13 * i, 9, 12) for i in range(6)]
    return a + b


def _canonical(items, packs):
    """Packs as sets of what their members are (not their positions)."""
    return sorted(
        (p.grid.bbox, tuple(sorted(items[m].sort_key for m in p.members)), p.windows) for p in packs
    )


def test_two_clusters_of_small_fields_become_two_requests():
    items = _two_clusters()
    packs = pack_grids(items)
    assert len(packs) == 2
    assert sorted(len(p.members) for p in packs) == [6, 6]
    assert sum(default_cost("k", p.grid.width, p.grid.height) for p in packs) == 20.0
    for p in packs:
        assert max(p.grid.width, p.grid.height) <= 2500
        for m, (r, c, h, w) in zip(p.members, p.windows, strict=True):
            g = items[m].grid
            assert (h, w) == g.shape
            assert sub_grid(p.grid, (r, c, h, w)) == g  # exact: snapped grids line up


def test_packs_do_not_depend_on_order_or_position():
    items = _two_clusters()
    reference = _canonical(items, pack_grids(items))
    for seed in range(5):
        shuffled = list(items)
        random.Random(seed).shuffle(shuffled)
        assert _canonical(shuffled, pack_grids(shuffled)) == reference


def test_different_keys_crs_or_resolution_never_share_a_request():
    items = [
        _field(1000, 1000, 10, 10, key="a"),
        _field(1020, 1000, 10, 10, key="b"),
        _field(1040, 1000, 10, 10, key="a", epsg=32634),
        PackItem("a", PixelGrid(32633, (10600.0, 10000.0, 10800.0, 10200.0), 10, 10), b"x"),
    ]
    packs = pack_grids(items)
    assert len(packs) == 4 and all(len(p.members) == 1 for p in packs)


def test_packs_respect_the_size_cap_and_split_far_fields():
    items = [_field(0, 0, 100, 100), _field(150, 0, 100, 100), _field(5000, 5000, 10, 10)]
    packs = pack_grids(items, max_px=250)
    sizes = sorted(len(p.members) for p in packs)
    assert sizes == [1, 2]
    packs = pack_grids(items, max_px=200)  # 250 px union is over the cap
    assert all(len(p.members) == 1 for p in packs)
    for p in packs:
        assert max(p.grid.width, p.grid.height) <= 200


def test_a_pack_is_made_only_where_it_is_cheaper():
    # two 2000 px fields 1000 px apart: each costs just over the 10 PU minimum, their union
    # (5000 x 2000 px) more than both together
    items = [_field(0, 0, 2000, 2000), _field(3000, 0, 2000, 2000)]
    alone = 2 * default_cost("k", 2000, 2000)
    assert default_cost("k", 5000, 2000) > alone > 20.0
    packs = pack_grids(items, max_px=10000)
    assert all(len(p.members) == 1 for p in packs)
    # the same fields 100 px apart: 4100 x 2000 px still costs more than both
    items = [_field(0, 0, 2000, 2000), _field(2100, 0, 2000, 2000)]
    assert all(len(p.members) == 1 for p in pack_grids(items, max_px=10000))
    # small fields as far apart: the 10 PU minimum makes the union cheaper
    items = [_field(0, 0, 200, 200), _field(300, 0, 200, 200)]
    (pack,) = pack_grids(items, max_px=10000)
    assert pack.grid.shape == (200, 500)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3000), st.integers(0, 3000), st.integers(1, 400), st.integers(1, 400)
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(100, 2500),
)
def test_packing_properties(fields, cap):
    items = [_field(x, y, w, h) for x, y, w, h in fields]
    packs = pack_grids(items, max_px=cap)
    seen = sorted(m for p in packs for m in p.members)
    assert seen == list(range(len(items)))  # every item in exactly one pack
    for p in packs:
        members_cost = sum(default_cost("k", *items[m].grid.shape[::-1]) for m in p.members)
        distinct = {items[m].sort_key for m in p.members}
        if len(distinct) > 1:
            assert max(p.grid.width, p.grid.height) <= cap
            assert default_cost("k", p.grid.width, p.grid.height) < members_cost
        for m, win in zip(p.members, p.windows, strict=True):
            assert sub_grid(p.grid, win) == items[m].grid


def test_identical_rows_share_one_member_slot():
    a = _field(100, 100, 10, 10)
    items = [a, a, _field(130, 100, 10, 10)]
    packs = pack_grids(items)
    (p,) = packs
    assert sorted(p.members) == [0, 1, 2]


def test_unsnapped_or_big_grids_stay_alone():
    odd = PackItem("k", PixelGrid(32633, (0.3, 0.0, 100.3, 100.0), 10, 10), b"odd")
    big = _field(0, 0, 3000, 10)
    items = [odd, big, _field(20, 0, 5, 5)]
    packs = pack_grids(items)
    assert len(packs) == 3
    assert any(p.grid == odd.grid for p in packs)


def test_custom_cost_function_is_used():
    items = [_field(0, 0, 10, 10), _field(20, 0, 10, 10)]
    # a cost rising steeply with area: the union (30x10 px) is dearer than 2 x 100 px
    packs = pack_grids(items, cost=lambda key, w, h: float(w * h) ** 2)
    assert all(len(p.members) == 1 for p in packs)


# --------------------------------------------------------------------------- plans


def test_plan_tiles_big_rows_and_packs_small_ones():
    big = _field(0, 0, 700, 500, tag=b"big")
    items = [big, *_two_clusters()]
    plan = plan_rows(items, max_request_px=300, pack=True)
    kinds = [r.kind for r in plan.requests]
    assert kinds.count("tile") == 6 and kinds.count("pack") == 2
    assert len(plan.parts[0]) == 6
    assert (_coverage(big.grid.shape, [p.target for p in plan.parts[0]]) == 1).all()
    for part in plan.parts[0]:
        req = plan.requests[part.request]
        assert req.rows == (0,) and part.source == (0, 0, *req.grid.shape)
        assert sub_grid(big.grid, part.target) == req.grid
    for row in range(1, len(items)):
        (part,) = plan.parts[row]
        req = plan.requests[part.request]
        assert row in req.rows and part.target == (0, 0, *items[row].grid.shape)
        assert sub_grid(req.grid, part.source) == items[row].grid
    assert total_cost(plan, items) == 6 * 10.0 + 2 * 10.0


def test_plan_without_packing_is_one_request_per_row():
    items = _two_clusters()
    plan = plan_rows(items)
    assert [r.kind for r in plan.requests] == ["row"] * 12
    for row, parts in enumerate(plan.parts):
        (part,) = parts
        assert plan.requests[part.request].grid == items[row].grid
        assert part.source == part.target == (0, 0, *items[row].grid.shape)
    assert total_cost(plan, items) == 120.0


def test_default_cost_is_the_published_rule():
    assert default_cost("k", 10, 10) == 10.0
    assert default_cost("k", 2048, 2048) == pytest.approx(
        async_pu(area_factor(2048, 2048), 2048, 2048)
    )
    assert default_cost("k", 2048, 2048) == pytest.approx(16 * 2 / 3)


def test_row_grid_is_from_resolution_without_the_size_limit():
    from xasync.grid import GridError
    from xasync.planner import MAX_ROW_PX, row_grid

    small = (426003.2, 3960007.9, 461995.1, 3993991.0)
    assert row_grid(small, 32633, 10) == PixelGrid.from_resolution(small, 32633, 10)
    big = (400003.2, 3900007.9, 561995.1, 3993991.0)
    with pytest.raises(GridError):
        PixelGrid.from_resolution(big, 32633, 10)
    g = row_grid(big, 32633, 10)
    assert g.bbox == (400000.0, 3900000.0, 562000.0, 3994000.0)
    assert (g.width, g.height) == (16200, 9400)
    assert g.transform.a == 10.0 and g.transform.e == -10.0
    tiles = tile_grid(g, 10000)
    assert len(tiles) == 2 and all(max(t.grid.shape) <= 10000 for t in tiles)
    with pytest.raises(GridError):
        row_grid((0, 0, (MAX_ROW_PX + 1) * 10.0, 10.0), 32633, 10)


# --------------------------------------------------------------------------- request specs

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""


def _specs(geoms, **kw):
    import geopandas as gpd

    from xasync.request import build_specs

    gdf = gpd.GeoDataFrame(geometry=list(geoms), crs=32633)
    kw.setdefault("resolution", 10)
    return build_specs(gdf, NDVI, time="2024-06-01", delivery="s3://bucket-x/plan", **kw)


def _small_fields():
    import shapely

    spots = [(0, 0), (300, 40), (620, -30), (180, 300), (500, 340), (800, 200)]
    geoms = []
    for ox, oy in ((500_000, 4_000_000), (530_000, 4_010_000)):
        for i, (dx, dy) in enumerate(spots):
            x, y = ox + dx + 3.3, oy + dy + 1.7
            geoms.append(shapely.box(x, y, x + 95 + 10 * i, y + 77).buffer(4, quad_segs=2))
    return geoms


def test_tile_requests_carry_the_row_geometry(monkeypatch):
    import shapely

    from xasync import plangeometry
    from xasync.planned import plan_specs

    geom = shapely.Polygon(
        [(500003.3, 4000001.1), (506997.7, 4000503.9), (506001.2, 4004998.6), (500500.4, 4004000.2)]
    )
    (spec,) = _specs([geom])
    planned = plan_specs([spec], max_request_px=300)
    assert len(planned.requests) == 6 and planned.row_requests == [tuple(range(6))]
    assert len({r.row_url for r in planned.requests}) == 6
    for req, src in zip(planned.requests, planned.sources[0], strict=True):
        assert req.grid == src.grid and src.window == (0, 0, *req.grid.shape)
        assert req.canonical_body()["output"]["width"] == req.grid.width
        assert req.geometry_wkb == spec.geometry_wkb  # small: sent whole, exact on its edges
    # big geometries are clipped to each tile's box grown by a pixel: same pixels inside
    monkeypatch.setattr(plangeometry, "CLIP_ABOVE_COORDS", 0)
    clipped_plan = plan_specs([spec], max_request_px=300)
    for req in clipped_plan.requests:
        clipped = shapely.from_wkb(req.geometry_wkb)
        minx, miny, maxx, maxy = req.grid.bbox
        assert clipped.within(shapely.box(minx - 10, miny - 10, maxx + 10, maxy + 10))
        xs, ys = np.meshgrid(req.grid.x_coords(), req.grid.y_coords())
        assert (shapely.intersects_xy(clipped, xs, ys) == shapely.intersects_xy(geom, xs, ys)).all()


def test_pack_requests_share_everything_but_their_bounds():
    import shapely

    from xasync.planned import pack_key, plan_specs

    specs = _specs(_small_fields())
    assert len({pack_key(s) for s in specs}) == 1
    planned = plan_specs(specs, pack=True)
    assert len(planned.requests) == 2
    for req in planned.requests:
        body = req.canonical_body()
        assert body["input"]["bounds"]["geometry"]["type"] == "MultiPolygon"
        assert body["evalscript"] == specs[0].canonical_body()["evalscript"]
        assert body["output"]["width"] == req.grid.width
    for spec, sources in zip(specs, planned.sources, strict=True):
        (src,) = sources
        assert sub_grid(src.grid, src.window) == spec.grid
        assert src.target == (0, 0, *spec.grid.shape)
        member = shapely.from_wkb(spec.geometry_wkb)
        assert shapely.from_wkb(
            planned.requests[planned.row_requests[specs.index(spec)][0]].geometry_wkb
        ).contains(member.representative_point())


def test_pack_keys_differ_with_what_is_bought():
    from xasync.planned import pack_key

    a = _specs(_small_fields()[:2])
    b = _specs(_small_fields()[:2], crs=32634)
    c = _specs(_small_fields()[:2], bounds="bbox")
    assert pack_key(a[0]) == pack_key(a[1])
    assert len({pack_key(a[0]), pack_key(b[0]), pack_key(c[0])}) == 3


def test_packs_are_the_same_requests_whatever_the_order_of_the_rows():
    from xasync.planned import plan_specs

    specs = _specs(_small_fields())
    urls = sorted(r.row_url for r in plan_specs(specs, pack=True).requests)
    geoms = _small_fields()
    for seed in range(3):
        order = list(range(len(geoms)))
        random.Random(seed).shuffle(order)
        shuffled = _specs([geoms[i] for i in order])
        planned = plan_specs(shuffled, pack=True)
        assert sorted(r.row_url for r in planned.requests) == urls
        for k, i in enumerate(order):  # each row reads the same window of the same request
            ref = plan_specs(specs, pack=True).sources[i][0]
            got = planned.sources[k][0]
            assert (got.row_url, got.window) == (ref.row_url, ref.window)


def test_pack_cost_uses_the_scripts_factors():
    from xasync.planned import pack_key, spec_cost_function

    specs = _specs(_small_fields()[:1])
    key = pack_key(specs[0])
    cost = spec_cost_function(specs, [key])
    # 2 bands (dataMask free) / 3, FLOAT32 x2, 2/3 from 10000 px: 4000 x 4000 px
    assert cost(key, 4000, 4000) == pytest.approx(4000 * 4000 / 512**2 * (2 / 3) * 2 * (2 / 3))
    assert cost(key, 10, 10) == 10.0


# --------------------------------------------------------------------------- job and graph


def test_tiled_job_combines_its_tiles_states_costs_and_errors():
    from xasync.jobs import RowStatus, State
    from xasync.ledger import Entry, Ledger, Stage
    from xasync.tiledjob import TiledJob

    ledger = Ledger()
    tiles = [(f"s3://b/p/t{k}", f"tile (0, {k})") for k in range(3)]
    shared = [("s3://b/p/pack", "pack of 2 rows")]
    rows = [RowStatus("tok-a", tiles[0][0], "a"), RowStatus("tok-b", "s3://b/p/pack", "b")]
    rows.append(RowStatus("tok-c", "s3://b/p/pack", "c"))
    job = TiledJob(rows, [tiles, shared, shared], ledger=ledger)
    assert job.urls == [u for u, _ in tiles] + ["s3://b/p/pack"]
    assert [s.state for s in job.snapshot()] == [State.QUEUED] * 3
    me = job.id
    ledger.record(tiles[0][0], Entry(tiles[0][0], Stage.DONE, "r0", 10.0, bought_by=me))
    ledger.record(tiles[1][0], Entry(tiles[1][0], Stage.RUNNING, "r1", bought_by=me))
    ledger.record("s3://b/p/pack", Entry("s3://b/p/pack", Stage.DONE, "rp", 10.0, bought_by=me))
    a, b, c = job.snapshot()
    assert a.state is State.QUEUED  # the least advanced unfinished tile (t2 not started)
    assert a.row_url == " ".join(u for u, _ in tiles)
    assert (b.state, b.cost_pu, c.cost_pu) == (State.DONE, 5.0, 5.0)  # a shared request
    ledger.record(tiles[1][0], Entry(tiles[1][0], Stage.FAILED, "r1", 10.0, "boom", bought_by=me))
    assert job.row(0).state is State.RUNNING or job.row(0).state is State.QUEUED
    ledger.record(tiles[2][0], Entry(tiles[2][0], Stage.DONE, "r2", 10.0, bought_by=me))
    a = job.row(0)
    assert a.state is State.FAILED and a.error == "tile (0, 1): boom"
    assert a.cost_pu == 30.0 and a.request_id == "r0 r1 r2"
    assert job.total_cost() == 40.0 and job.finished


def test_tiled_job_shares_a_request_between_tiled_and_single_rows():
    """A request is counted once per row that needs it, whether the row has one part or
    several."""
    from xasync.jobs import RowStatus
    from xasync.ledger import Entry, Ledger, Stage
    from xasync.tiledjob import TiledJob

    ledger = Ledger()
    t0, t1, t2 = [(f"s3://b/p/t{k}", f"tile (0, {k})") for k in range(3)]
    rows = [RowStatus("a", t0[0], "a"), RowStatus("b", t0[0], "b"), RowStatus("c", t0[0], "c")]
    job = TiledJob(rows, [[t0, t1], (t0,), [t0, t2]], ledger=ledger)
    assert job._share == {t0[0]: 3, t1[0]: 1, t2[0]: 1}
    for (url, _), cost in ((t0, 30.0), (t1, 10.0), (t2, 5.0)):
        ledger.record(url, Entry(url, Stage.DONE, url[-2:], cost, bought_by=job.id))
    assert [s.cost_pu for s in job.snapshot()] == [20.0, 10.0, 15.0]
    with pytest.raises(ValueError, match="2 part lists for 3 rows"):
        TiledJob(rows, [(t0,), (t1,)], ledger=ledger)


def _mosaic_inputs():
    from xasync.plan import OutputPlan, ReadPlan
    from xasync.planned import Source

    grid = PixelGrid(32633, (500000.0, 4000000.0, 507000.0, 4005000.0), 700, 500)
    plan = ReadPlan("tok", "s3://b/p/row", grid, (OutputPlan("ndvi", 1, "float32"),), label="r1")
    sources = [
        Source(
            f"t{i}",
            f"s3://b/p/t{i}",
            tl.grid,
            (0, 0, *tl.grid.shape),
            tl.window,
            f"tile {tl.index}",
        )
        for i, tl in enumerate(tile_grid(grid, 300))
    ]
    return plan, sources


def test_mosaic_chunks_are_cut_at_the_seams_and_await_only_their_tiles():
    import dask.core

    from xasync.mosaic import build_mosaic
    from xasync.reader import ReaderConfig

    plan, sources = _mosaic_inputs()
    ds = build_mosaic(plan, sources, reader=ReaderConfig(), chunks=200)
    arr = ds["ndvi"].data
    assert arr.chunks == ((200, 50, 200, 50), (200, 34, 200, 33, 200, 33))  # restart at seams
    assert ds["ndvi"].shape == (500, 700) and (ds.x.values == plan.grid.x_coords()).all()
    assert ds.encoding["xasync"]["row_url"].split() == [s.row_url for s in sources]

    def awaits(a):
        culled = a.__dask_graph__().cull(set(dask.core.flatten(a.__dask_keys__())))
        return {k for k in culled if isinstance(k, str) and k.startswith("await")}

    assert len(awaits(arr)) == 6
    assert len(awaits(arr[:250, :234])) == 1
    assert len(awaits(arr[240:260, 230:240])) == 4


def test_mosaic_rejects_sources_that_do_not_cover_the_row():
    import dataclasses

    from xasync.mosaic import build_mosaic
    from xasync.reader import ReaderConfig

    plan, sources = _mosaic_inputs()
    with pytest.raises(ValidationError, match="cover"):
        build_mosaic(plan, sources[:-1], reader=ReaderConfig())
    bad = dataclasses.replace(sources[0], window=(0, 0, 10, 10))
    with pytest.raises(ValidationError, match="does not fit"):
        build_mosaic(plan, [bad, *sources[1:]], reader=ReaderConfig())


def test_mosaic_with_explicit_block_sizes_cuts_them_at_the_seams():
    from xasync.mosaic import build_mosaic
    from xasync.reader import ReaderConfig

    plan, sources = _mosaic_inputs()
    ds = build_mosaic(plan, sources, reader=ReaderConfig(), chunks=((300, 200), (700,)))
    assert ds["ndvi"].data.chunks == ((250, 50, 200), (234, 233, 233))


def test_mosaic_graph_pickles_for_workers_and_holds_no_secret():
    import cloudpickle

    from xasync.mosaic import build_mosaic
    from xasync.reader import ReaderConfig

    plan, sources = _mosaic_inputs()
    ds = build_mosaic(plan, sources, reader=ReaderConfig())
    graph = dict(ds.__dask_graph__())
    blob = cloudpickle.dumps(graph)
    assert cloudpickle.loads(blob).keys() == graph.keys()
    assert b"secret" not in blob and "secret" not in repr(ds.attrs)


def test_a_pack_holds_at_most_max_pack_members_distinct_geometries(monkeypatch):
    from xasync import packing

    monkeypatch.setattr(packing, "MAX_PACK_MEMBERS", 4)
    items = [_field(100 + 20 * i, 100, 10, 10) for i in range(10)]
    items.append(items[0])  # identical to a member: shares its slot, not counted again
    packs = pack_grids(items)
    assert sorted(len({items[m].sort_key for m in p.members}) for p in packs) == [2, 4, 4]
    assert sum(len(p.members) for p in packs) == 11


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=60),
    st.lists(st.sampled_from([b"", b"\x00", b"\x00\x00", b"\xff"]), max_size=4),
)
def test_sort_keys_are_ranked_as_sorted_orders_them(keys, tails):
    from xasync.packing import _key_ranks

    keys = keys + [k + t for k, t in zip(keys, tails)]  # prefixes, trailing zeros, duplicates
    expected = {k: r for r, k in enumerate(sorted(set(keys)))}
    assert _key_ranks(keys).tolist() == [expected[k] for k in keys]
    assert _key_ranks(["b", "a", "b"]).tolist() == [1, 0, 1]  # not bytes: sorted by Python


def test_fast_constructors_make_the_dataclasses_objects():
    import dataclasses
    import pickle

    from xasync.planned import Source, _new_source
    from xasync.planner import Part, _new_part

    grid = PixelGrid(32633, (0.0, 0.0, 30.0, 20.0), 3, 2)
    pairs = [
        (_new_part(3, (0, 1, 2, 2), (0, 0, 2, 2)), Part(3, (0, 1, 2, 2), (0, 0, 2, 2))),
        (
            _new_source("tok", "s3://b/r", grid, (0, 0, 2, 3), (0, 0, 2, 3), "pack of 2 rows"),
            Source("tok", "s3://b/r", grid, (0, 0, 2, 3), (0, 0, 2, 3), "pack of 2 rows"),
        ),
    ]
    for fast, slow in pairs:
        assert type(fast) is type(slow) and fast == slow and hash(fast) == hash(slow)
        assert repr(fast) == repr(slow) and dataclasses.asdict(fast) == dataclasses.asdict(slow)
        assert pickle.loads(pickle.dumps(fast)) == slow
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.target = (0, 0, 1, 1)
