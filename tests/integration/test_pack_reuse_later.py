"""A row delivered in a pack (or as tiles) is read from it by a later call, never bought again."""

from __future__ import annotations

import numpy as np
import pytest

import xasync
from xasync.emulator import Faults

from .test_pack_reuse import NDVI, TIME, WAIT_S, _fields

PACK = {"pack": True, "pack_max_px": 400}


def _run(gdf, emu, client, delivery, *, mask=True, **kw):
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        mask=mask,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    return res


def _creates(emu) -> int:
    return int(emu.stats["creates"])


@pytest.fixture
def packed(e2e):
    """``(emu, client, root, gdf, results)``: the 12 fields bought packed (with ``mask=True``)."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields()
    res = _run(gdf, emu, client, f"{root}/p", **PACK)
    assert (res.status()["state"] == "done").all()
    assert 2 <= _creates(emu) <= 4
    return emu, client, root, gdf, res


def test_rows_of_a_pack_asked_alone_buy_nothing_and_equal_a_fresh_alone_purchase(packed):
    emu, client, root, gdf, res = packed
    bought = _creates(emu)
    alone = _run(gdf, emu, client, f"{root}/p")  # pack=False: each row alone
    assert _creates(emu) == bought
    status = alone.status()
    assert (status["state"] == "done").all() and status["reused"].all()
    assert list(status["requests"]) == list(res.status()["requests"])  # the packs' folders
    assert alone.cost == 0.0
    fresh = _run(gdf, emu, client, f"{root}/fresh")  # the same rows bought alone
    assert _creates(emu) == bought + len(gdf)
    for label in gdf.index:
        got, want = alone[label], fresh[label]
        assert got["ndvi"].shape == want["ndvi"].shape
        np.testing.assert_array_equal(got["x"].values, want["x"].values)
        np.testing.assert_array_equal(got["y"].values, want["y"].values)
        np.testing.assert_array_equal(got["ndvi"].values, want["ndvi"].values)  # NaN for NaN


def test_a_subset_reuses_the_packs_packed_or_not(packed):
    emu, client, root, gdf, res = packed
    bought = _creates(emu)
    subset = gdf.iloc[[0, 2, 7, 11]]
    for kw in (PACK, {}):
        sub = _run(subset, emu, client, f"{root}/p", **kw)
        assert _creates(emu) == bought
        for label in subset.index:
            np.testing.assert_array_equal(sub[label]["ndvi"].values, res[label]["ndvi"].values)
    again = _run(gdf, emu, client, f"{root}/p", **PACK)  # and the full packed call still
    assert _creates(emu) == bought
    assert list(again.status()["requests"]) == list(res.status()["requests"])


def test_without_mask_a_row_of_a_pack_is_bought_alone(packed):
    """Outside its geometry a pack holds neighbours' values: reading it would not be exact."""
    emu, client, root, gdf, _ = packed
    bought = _creates(emu)
    subset = gdf.iloc[[0, 1]]
    _run(subset, emu, client, f"{root}/p", mask=False)
    assert _creates(emu) == bought + 2


def test_a_failed_pack_is_not_used(e2e):
    emu, client, root = e2e
    gdf = _fields()
    emu.configure(concurrency_limit=8, processing_seconds=0.05, faults=Faults(failure_rate=1.0))
    failed = _run(gdf, emu, client, f"{root}/f", **PACK)
    assert (failed.status()["state"] == "failed").all()
    packs = _creates(emu)
    emu.configure(faults=Faults())
    alone = _run(gdf.iloc[:3], emu, client, f"{root}/f")
    assert _creates(emu) == packs + 3
    assert (alone.status()["state"] == "done").all()


def test_a_row_bought_as_tiles_is_not_bought_again_as_one_request(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields().iloc[:2]
    tiled = _run(gdf, emu, client, f"{root}/t", max_request_px=8)
    tiles = _creates(emu)
    assert tiles > 2
    whole = _run(gdf, emu, client, f"{root}/t")
    assert _creates(emu) == tiles
    for label in gdf.index:
        np.testing.assert_array_equal(whole[label]["ndvi"].values, tiled[label]["ndvi"].values)
    assert isinstance(whole, xasync.Results)


def test_with_bounds_bbox_an_unmasked_row_of_a_pack_is_exact(e2e):
    """No geometry is sent: a pack's pixels over a row's bbox are those of the row alone."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields().iloc[:6]
    _run(gdf, emu, client, f"{root}/b", mask=False, bounds="bbox", **PACK)
    bought = _creates(emu)
    assert bought < len(gdf)
    alone = _run(gdf, emu, client, f"{root}/b", mask=False, bounds="bbox")
    assert _creates(emu) == bought
    fresh = _run(gdf, emu, client, f"{root}/fresh", mask=False, bounds="bbox")
    assert _creates(emu) == bought + len(gdf)
    for label in gdf.index:
        np.testing.assert_array_equal(alone[label]["ndvi"].values, fresh[label]["ndvi"].values)


def test_a_row_bought_alone_is_not_bought_again_as_tiles(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields().iloc[:2]
    whole = _run(gdf, emu, client, f"{root}/w", mask=False)
    assert _creates(emu) == 2
    tiled = _run(gdf, emu, client, f"{root}/w", mask=False, max_request_px=8)
    assert _creates(emu) == 2
    assert list(tiled.status()["requests"]) == list(whole.status()["requests"])
    for label in gdf.index:
        np.testing.assert_array_equal(tiled[label]["ndvi"].values, whole[label]["ndvi"].values)
