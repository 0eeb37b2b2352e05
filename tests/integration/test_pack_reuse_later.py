"""A row delivered in a pack (or as tiles) is read from it by a later call, never bought again."""

from __future__ import annotations

import numpy as np

import xasync
from xasync.emulator import Faults

from ._packs import PACK, creates, pack_fields, run_and_wait


def test_rows_of_a_pack_asked_alone_buy_nothing_and_equal_a_fresh_alone_purchase(packed):
    emu, client, root, gdf, res = packed
    bought = creates(emu)
    alone = run_and_wait(gdf, emu, client, f"{root}/p")  # pack=False: each row alone
    assert creates(emu) == bought
    status = alone.status()
    assert (status["state"] == "done").all() and status["reused"].all()
    assert list(status["requests"]) == list(res.status()["requests"])  # the packs' folders
    assert alone.cost == 0.0
    fresh = run_and_wait(gdf, emu, client, f"{root}/fresh")  # the same rows bought alone
    assert creates(emu) == bought + len(gdf)
    for label in gdf.index:
        got, want = alone[label], fresh[label]
        assert got["ndvi"].shape == want["ndvi"].shape
        np.testing.assert_array_equal(got["x"].values, want["x"].values)
        np.testing.assert_array_equal(got["y"].values, want["y"].values)
        np.testing.assert_array_equal(got["ndvi"].values, want["ndvi"].values)  # NaN for NaN


def test_a_subset_reuses_the_packs_packed_or_not(packed):
    emu, client, root, gdf, res = packed
    bought = creates(emu)
    subset = gdf.iloc[[0, 2, 7, 11]]
    for kw in (PACK, {}):
        sub = run_and_wait(subset, emu, client, f"{root}/p", **kw)
        assert creates(emu) == bought
        for label in subset.index:
            np.testing.assert_array_equal(sub[label]["ndvi"].values, res[label]["ndvi"].values)
    again = run_and_wait(gdf, emu, client, f"{root}/p", **PACK)  # and the full packed call still
    assert creates(emu) == bought
    assert list(again.status()["requests"]) == list(res.status()["requests"])


def test_without_mask_a_row_of_a_pack_is_bought_alone(packed):
    """Outside its geometry a pack holds neighbours' values: reading it would not be exact."""
    emu, client, root, gdf, _ = packed
    bought = creates(emu)
    subset = gdf.iloc[[0, 1]]
    run_and_wait(subset, emu, client, f"{root}/p", mask=False)
    assert creates(emu) == bought + 2


def test_a_failed_pack_is_not_used(e2e):
    emu, client, root = e2e
    gdf = pack_fields()
    emu.configure(concurrency_limit=8, processing_seconds=0.05, faults=Faults(failure_rate=1.0))
    failed = run_and_wait(gdf, emu, client, f"{root}/f", **PACK)
    assert (failed.status()["state"] == "failed").all()
    packs = creates(emu)
    emu.configure(faults=Faults())
    alone = run_and_wait(gdf.iloc[:3], emu, client, f"{root}/f")
    assert creates(emu) == packs + 3
    assert (alone.status()["state"] == "done").all()


def test_a_row_bought_as_tiles_is_not_bought_again_as_one_request(pack_e2e):
    emu, client, root = pack_e2e
    gdf = pack_fields().iloc[:2]
    tiled = run_and_wait(gdf, emu, client, f"{root}/t", max_request_px=8)
    tiles = creates(emu)
    assert tiles > 2
    whole = run_and_wait(gdf, emu, client, f"{root}/t")
    assert creates(emu) == tiles
    for label in gdf.index:
        np.testing.assert_array_equal(whole[label]["ndvi"].values, tiled[label]["ndvi"].values)
    assert isinstance(whole, xasync.Results)


def test_with_bounds_bbox_an_unmasked_row_of_a_pack_is_exact(pack_e2e):
    """No geometry is sent: a pack's pixels over a row's bbox are those of the row alone."""
    emu, client, root = pack_e2e
    gdf = pack_fields().iloc[:6]
    run_and_wait(gdf, emu, client, f"{root}/b", mask=False, bounds="bbox", **PACK)
    bought = creates(emu)
    assert bought < len(gdf)
    alone = run_and_wait(gdf, emu, client, f"{root}/b", mask=False, bounds="bbox")
    assert creates(emu) == bought
    fresh = run_and_wait(gdf, emu, client, f"{root}/fresh", mask=False, bounds="bbox")
    assert creates(emu) == bought + len(gdf)
    for label in gdf.index:
        np.testing.assert_array_equal(alone[label]["ndvi"].values, fresh[label]["ndvi"].values)


def test_a_row_bought_alone_is_not_bought_again_as_tiles(pack_e2e):
    emu, client, root = pack_e2e
    gdf = pack_fields().iloc[:2]
    whole = run_and_wait(gdf, emu, client, f"{root}/w", mask=False)
    assert creates(emu) == 2
    tiled = run_and_wait(gdf, emu, client, f"{root}/w", mask=False, max_request_px=8)
    assert creates(emu) == 2
    assert list(tiled.status()["requests"]) == list(whole.status()["requests"])
    for label in gdf.index:
        np.testing.assert_array_equal(tiled[label]["ndvi"].values, whole[label]["ndvi"].values)
