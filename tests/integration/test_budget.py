"""Costs before paying, end to end: gdf.xasync.estimate, process(max_pu=...), estimated_pu in status.

Also the deployment's delivery refusals, checked by ``process`` before anything is bought.
"""

from __future__ import annotations

import pytest

import xasync

from ._shared import NDVI, TIME, fields


def test_estimate_needs_nothing_and_matches_the_charge(e2e):
    emu, client, root = e2e
    gdf = fields(3)
    keywords = {"time": TIME, "resolution": 10, "crs": "utm"}
    costs = gdf.xasync.estimate(NDVI, **keywords)  # no client, no delivery
    assert list(costs.index) == list(gdf.index)
    assert emu.stats["creates"] == 0 and emu.stats["token_calls"] == 0

    results = gdf.xasync.process(
        NDVI,
        **keywords,
        delivery=f"{root}/ndvi",
        storage_options=emu.storage_options,
        client=client,
    )
    status = results.wait(timeout=120, progress=False).status()
    assert list(status["estimated_pu"]) == pytest.approx(list(costs["estimated_pu"]))
    assert list(status["cost_pu"]) == pytest.approx(list(costs["estimated_pu"]))


def test_budget_exceeded_raises_before_anything_is_paid(e2e):
    emu, client, root = e2e
    gdf = fields(3)  # three requests of at least 10 PU each
    with pytest.raises(xasync.BudgetExceeded) as info:
        gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=10,
            crs="utm",
            delivery=f"{root}/ndvi",
            storage_options=emu.storage_options,
            client=client,
            max_pu=25,
        )
    assert isinstance(info.value, xasync.ValidationError)
    assert info.value.estimate_pu == pytest.approx(30.0) and info.value.max_pu == 25
    assert "30.00 PU" in str(info.value)
    assert emu.stats["creates"] == 0


def test_cdse_refuses_an_iam_role_before_paying(e2e):
    emu, _client, root = e2e
    cdse = xasync.Client.from_emulator(emu, deployment="cdse")
    try:
        with pytest.raises(xasync.ValidationError, match="iam"):
            fields(1).xasync.process(
                NDVI,
                time=TIME,
                resolution=10,
                crs="utm",
                delivery=f"{root}/ndvi",
                iam_role_arn="arn:aws:iam::123456789012:role/sh",
                client=cdse,
            )
    finally:
        cdse.close()
    assert emu.stats["creates"] == 0
