"""A row already bought alone is reused by a later ``pack=True`` call, never bought in a pack."""

from __future__ import annotations

import numpy as np
import pytest

from xasync.planned import plan_specs
from xasync.request import build_specs

from ._packs import NDVI, PACK, TIME, WAIT_S, creates, pack_fields, run_and_wait

__all__ = ["NDVI", "TIME", "WAIT_S", "_fields"]

ALONE = ["field-0", "field-1", "field-7"]
_fields = pack_fields  # the name other test modules import


def test_plan_keeps_rows_alone_under_their_own_request():
    specs = build_specs(
        pack_fields(),
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        delivery="s3://my-bucket/fields",
        tiled=True,
    )
    packed = plan_specs(specs, **PACK)
    kept = plan_specs(specs, **PACK, keep_alone={0, 7})
    for i in (0, 7):
        assert packed.sources[i][0].row_url != specs[i].row_url  # packed when nothing exists
        (source,) = kept.sources[i]
        assert (source.row_url, source.token, source.name) == (
            specs[i].row_url,
            specs[i].token,
            "request",
        )
    assert all(kept.sources[i][0].name.startswith("pack of") for i in (1, 2, 3, 8, 9))


def test_rows_bought_alone_are_reused_by_a_packed_call(pack_e2e):
    emu, client, root = pack_e2e
    gdf = pack_fields()
    first = run_and_wait(gdf.loc[ALONE], emu, client, f"{root}/f")
    assert creates(emu) == 3
    packed = run_and_wait(gdf, emu, client, f"{root}/f", **PACK)
    bought = creates(emu) - 3
    status, alone = packed.status(), first.status()
    assert (status["state"] == "done").all()
    for label in ALONE:
        assert status.loc[label, "request_id"] == alone.loc[label, "request_id"]
        assert status.loc[label, "requests"] == alone.loc[label, "requests"]
        assert bool(status.loc[label, "reused"]) and status.loc[label, "cost_pu"] == 0.0
        np.testing.assert_array_equal(packed[label]["ndvi"].values, first[label]["ndvi"].values)
    others = status.drop(index=ALONE)
    assert 2 <= bought <= 4 and others["requests"].nunique() == bought
    assert not set(others["requests"]) & set(alone["requests"])
    assert packed.cost == pytest.approx(float(others["cost_pu"].sum()))
    # the same packed call again buys nothing: the same rows stay alone, the same packs
    again = run_and_wait(gdf, emu, client, f"{root}/f", **PACK)
    assert creates(emu) == 3 + bought
    assert list(again.status()["requests"]) == list(status["requests"])


def test_a_delivered_pack_is_still_reused_after_one_of_its_rows_was_bought_alone(pack_e2e):
    emu, client, root = pack_e2e
    gdf = pack_fields()
    packed = run_and_wait(gdf, emu, client, f"{root}/g", **PACK)
    bought = creates(emu)
    # the same field alone, unmasked: not read from its pack (not exact, xasync.pack_reuse)
    run_and_wait(gdf.loc[["field-0"]], emu, client, f"{root}/g", mask=False)
    assert creates(emu) == bought + 1
    again = run_and_wait(gdf, emu, client, f"{root}/g", **PACK)
    assert creates(emu) == bought + 1  # its pack exists: nothing bought again
    assert list(again.status()["requests"]) == list(packed.status()["requests"])
