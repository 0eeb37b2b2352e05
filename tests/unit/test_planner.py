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
        np.testing.assert_allclose(tile.grid.x_coords(), grid.x_coords()[c : c + w], rtol=1e-13)
        np.testing.assert_allclose(tile.grid.y_coords(), grid.y_coords()[r : r + h], rtol=1e-13)


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
