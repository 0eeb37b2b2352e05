"""pack_grids equals the planner it replaced (commit 430c69f), item by item, on random inputs.

The reference below is the earlier, one-item-at-a-time implementation, kept as the oracle: the
same rows must give the same packs (members, order, grids, windows), or users who bought packs
would pay for them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xasync.grid import SNAP_TOLERANCE_PX, PixelGrid
from xasync.planner import Pack, PackItem, default_cost, pack_grids
from xasync.tiles import sub_grid


def _snapped_indices(grid):
    resx, resy = grid.resolution
    out = []
    for v, res in zip(grid.bbox, (resx, resy, resx, resy), strict=True):
        k = round(v / res)
        if abs(v / res - k) > SNAP_TOLERANCE_PX:
            return None
        out.append(int(k))
    kx0, ky0, kx1, ky1 = out
    if (kx1 - kx0, ky1 - ky0) != (grid.width, grid.height):
        return None
    return kx0, ky0, kx1, ky1


@dataclass
class _Group:
    family: tuple
    box: tuple
    members: list = field(default_factory=list)
    cost: float = 0.0
    distinct: int = 1


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def reference_pack_grids(items, *, max_px, cost, max_members):
    """The earlier pack_grids (commit 430c69f), with MAX_PACK_MEMBERS as an argument."""
    order, alone, boxes = [], [], {}
    for i, item in enumerate(items):
        k = _snapped_indices(item.grid)
        if k is None or max(item.grid.width, item.grid.height) > max_px:
            alone.append(i)
            continue
        boxes[i] = k
        family = (item.key, item.grid.epsg, item.grid.resolution)
        cell = (-(k[3] // max_px), k[0] // max_px)
        order.append(((family, cell, -k[3], k[0], k[1], k[2], item.sort_key), i))
    order.sort()
    groups, by_cell, home, same = [], {}, {}, {}
    for (family, cell, *_rest), i in order:
        ident = (family, boxes[i], items[i].sort_key)
        if ident in same:
            groups[same[ident]].members.append(i)
            continue
        w, h = items[i].grid.width, items[i].grid.height
        own = cost(items[i].key, w, h)
        chosen = None
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for g in by_cell.get((family, cell[0] + dy, cell[1] + dx), ()):
                    box = _union(groups[g].box, boxes[i])
                    gw, gh = box[2] - box[0], box[3] - box[1]
                    if max(gw, gh) > max_px:
                        continue
                    union_cost = cost(items[i].key, gw, gh)
                    if union_cost < groups[g].cost + own and (chosen is None or g < chosen[0]):
                        chosen = (g, box, union_cost)
        if chosen is None:
            home[len(groups)] = (family, *cell)
            if max_members > 1:
                by_cell.setdefault((family, *cell), []).append(len(groups))
            groups.append(_Group(family, boxes[i], [i], own))
            same[ident] = len(groups) - 1
        else:
            g, box, union_cost = chosen
            groups[g].box, groups[g].cost = box, union_cost
            groups[g].members.append(i)
            groups[g].distinct += 1
            same[ident] = g
            if groups[g].distinct >= max_members:
                by_cell[home[g]].remove(g)
    packs = [_pack_of(items, g, boxes) for g in groups]
    packs += [
        Pack(items[i].key, items[i].grid, (i,), ((0, 0, *items[i].grid.shape),)) for i in alone
    ]
    packs.sort(key=lambda p: (p.key, p.grid.epsg, p.grid.bbox, p.members))
    return packs


def _pack_of(items, group, boxes):
    kx0, ky0, kx1, ky1 = group.box
    first = items[group.members[0]].grid
    resx, resy = first.resolution
    if len(group.members) == 1:
        grid = first
    else:
        grid = PixelGrid(
            first.epsg, (kx0 * resx, ky0 * resy, kx1 * resx, ky1 * resy), kx1 - kx0, ky1 - ky0
        )
    members = sorted(group.members, key=lambda i: (items[i].sort_key, boxes[i], i))
    windows = []
    for i in members:
        bx0, by0, bx1, by1 = boxes[i]
        win = (ky1 - by1, bx0 - kx0, by1 - by0, bx1 - bx0)
        sub = sub_grid(grid, win)
        assert sub.shape == items[i].grid.shape
        windows.append(win)
    return Pack(items[group.members[0]].key, grid, tuple(members), tuple(windows))


def _steep(key, w, h):
    return max(10.0, w * h / 3000.0) + (0.25 if key == "b" else 0.0)


def _stepped(key, w, h):
    """Whole steps of area: a union often costs exactly its group and item apart (a tie)."""
    del key
    return 5.0 * (1 + (w * h) // 400)


COSTS = {"default": default_cost, "steep": _steep, "stepped": _stepped}


ITEM = st.tuples(
    st.integers(-40, 40),  # kx
    st.integers(-40, 40),  # ky
    st.integers(1, 50),  # width
    st.integers(1, 50),  # height
    st.sampled_from(["a", "a", "b"]),  # key
    st.sampled_from([32633, 32633, 32634]),  # epsg
    st.sampled_from([10.0, 10.0, 20.0, 0.3]),  # resolution
    st.integers(0, 30),  # sort key (few values: ties and identical items)
    st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.37]),  # offset: unsnapped
)


def _items(specs):
    items = []
    for kx, ky, w, h, key, epsg, res, tag, off in specs:
        bbox = (kx * res + off, ky * res, (kx + w) * res + off, (ky + h) * res)
        items.append(PackItem(key, PixelGrid(epsg, bbox, w, h), str(tag).encode()))
    return items


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ITEM, min_size=1, max_size=80),
    st.sampled_from([20, 60, 120, 2500]),
    st.sampled_from([2, 3, 500]),
    st.sampled_from(sorted(COSTS)),
    st.lists(st.integers(0, 79), max_size=10),
)
def test_pack_grids_equals_the_earlier_planner(specs, max_px, members, cost_name, repeats):
    from xasync import packing

    items = _items(specs)
    items += [items[r % len(items)] for r in repeats]  # identical rows
    cost = COSTS[cost_name]
    expected = reference_pack_grids(items, max_px=max_px, cost=cost, max_members=members)
    saved = packing.MAX_PACK_MEMBERS
    packing.MAX_PACK_MEMBERS = members
    try:
        got = pack_grids(items, max_px=max_px, cost=cost)
    finally:
        packing.MAX_PACK_MEMBERS = saved
    assert got == expected


@pytest.mark.parametrize("seed", range(3))
def test_pack_grids_equals_the_earlier_planner_on_dense_clusters(seed):
    import random

    rng = random.Random(seed)
    specs = [
        (
            rng.randrange(0, 900),
            rng.randrange(0, 700),
            rng.randrange(1, 60),
            rng.randrange(1, 60),
            "a",
            32633,
            10.0,
            rng.randrange(0, 2000),
            0.0,
        )
        for _ in range(1500)
    ]
    items = _items(specs)
    from xasync import packing

    for max_px, members, cost in ((300, 500, default_cost), (2500, 40, _stepped), (120, 7, _steep)):
        expected = reference_pack_grids(items, max_px=max_px, cost=cost, max_members=members)
        saved, packing.MAX_PACK_MEMBERS = packing.MAX_PACK_MEMBERS, members
        try:
            assert pack_grids(items, max_px=max_px, cost=cost) == expected
        finally:
            packing.MAX_PACK_MEMBERS = saved


def test_a_union_costing_exactly_its_parts_is_no_pack():
    items = _items(
        [(0, 0, 20, 20, "a", 32633, 10.0, 1, 0.0), (0, 39, 1, 1, "a", 32633, 10.0, 2, 0.0)]
    )
    assert _stepped("a", 20, 40) == _stepped("a", 20, 20) + _stepped("a", 1, 1)
    expected = reference_pack_grids(items, max_px=2500, cost=_stepped, max_members=500)
    assert pack_grids(items, max_px=2500, cost=_stepped) == expected
    assert len(expected) == 2
