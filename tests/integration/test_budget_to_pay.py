"""``process(max_pu=...)`` counts what the call pays: ``estimate``'s ``pu_to_pay``, not its total.

Each case buys part of a call first, estimates the whole call with the delivery, then runs it
with ``max_pu`` one float below ``attrs["pu_to_pay"]`` (refused, nothing created: the
emulator's creates are counted) and at ``attrs["pu_to_pay"]`` (it passes, and the emulator
charges exactly that: ``stats["processing_units"]``), for the three modes (unpacked, tiled,
packed) and for a time series (``freq=``) under both ``temporal`` modes.
"""

from __future__ import annotations

import math
import time

import pytest

import xasync
from xasync.emulator import Faults

from .test_pack_reuse import NDVI, TIME, WAIT_S, _fields

PACK = {"pack": True, "pack_max_px": 400}
TILED = {"max_request_px": 8}


def _kw(emu, delivery, **kw):
    base = {"time": TIME, "resolution": 10, "crs": "utm", "mask": True, "delivery": delivery}
    return {**base, "storage_options": emu.storage_options, **kw}


def _creates(emu) -> int:
    return int(emu.stats["creates"])


def _charged(emu) -> float:
    return float(emu.stats["processing_units"])


def _buy(emu, client, gdf, delivery, **kw):
    res = gdf.xasync.process(NDVI, client=client, **_kw(emu, delivery, **kw))
    assert res.wait(timeout=WAIT_S, progress=False) is res
    return res


def _below_then_at(emu, client, gdf, delivery, **kw):
    """Estimate, refuse one float below ``pu_to_pay``, buy at it; ``(frame, error, charged)``."""
    frame = gdf.xasync.estimate(NDVI, **_kw(emu, delivery, **kw))
    to_pay = frame.attrs["pu_to_pay"]
    assert frame.attrs["delivery_checked"] and 0 < to_pay < frame.attrs["total_pu"]
    creates, before = _creates(emu), _charged(emu)
    below = math.nextafter(to_pay, 0.0)
    with pytest.raises(xasync.BudgetExceeded) as info:
        gdf.xasync.process(NDVI, client=client, max_pu=below, **_kw(emu, delivery, **kw))
    assert _creates(emu) == creates and _charged(emu) == before  # nothing bought
    assert info.value.estimate_pu == pytest.approx(to_pay, rel=1e-12)
    assert info.value.max_pu == below
    _buy(emu, client, gdf, delivery, max_pu=to_pay, **kw)
    new = {
        r
        for reqs, states in zip(frame["requests"], frame["request_state"], strict=True)
        for r, state in zip(reqs.split(), states.split(), strict=True)
        if state == "new"
    }
    assert _creates(emu) - creates == len(new) == info.value.requests
    return frame, info.value, _charged(emu) - before


@pytest.fixture
def env(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    return emu, client, root


def _delivered_pu(frame) -> float:
    """The full price of the rows whose requests are all delivered (each bought alone)."""
    done = frame["request_state"].map(lambda s: set(s.split()) == {"delivered"})
    return float(frame.loc[done, "estimated_pu"].sum())


@pytest.mark.parametrize("kw", [{}, TILED, PACK], ids=["unpacked", "tiled", "packed"])
def test_a_partly_delivered_call_is_bought_for_its_pu_to_pay(env, kw):
    emu, client, root = env
    gdf = _fields()
    _buy(emu, client, gdf.iloc[[0, 1, 6]], f"{root}/a", **kw)  # 3 rows bought earlier
    first = _charged(emu)
    frame, error, charged = _below_then_at(emu, client, gdf, f"{root}/a", **kw)
    assert charged == pytest.approx(frame.attrs["pu_to_pay"], abs=1e-5)
    for label in gdf.index[[0, 1, 6]]:
        assert set(frame.loc[label, "request_state"].split()) == {"delivered"}
    # the error says what is delivered and not paid again
    delivered = error.existing_pu["delivered"]
    assert delivered == pytest.approx(frame.attrs["total_pu"] - frame.attrs["pu_to_pay"])
    assert delivered > 0 and f"{delivered:.2f} PU delivered" in str(error)
    if not kw.get("pack"):  # alone or tiled, the three rows are their own requests
        assert delivered == pytest.approx(first) == pytest.approx(_delivered_pu(frame))
    # run again: nothing to pay, any budget passes, nothing is created
    creates = _creates(emu)
    again = gdf.xasync.estimate(NDVI, **_kw(emu, f"{root}/a", **kw))
    assert again.attrs["pu_to_pay"] == 0.0
    _buy(emu, client, gdf, f"{root}/a", max_pu=0.001, **kw)
    assert _creates(emu) == creates


def test_a_tiled_row_whose_tiles_exist_counts_only_the_new_row(env):
    emu, client, root = env
    gdf = _fields().iloc[:2]
    _buy(emu, client, gdf.iloc[[0]], f"{root}/t", **TILED)
    tiles = _creates(emu)
    assert tiles >= 2  # the row is bought as tiles
    frame, error, charged = _below_then_at(emu, client, gdf, f"{root}/t", **TILED)
    assert len(frame.iloc[0]["request_state"].split()) == tiles
    assert set(frame.iloc[0]["request_state"].split()) == {"delivered"}
    assert set(frame.iloc[1]["request_state"].split()) == {"new"}
    assert charged == pytest.approx(frame.iloc[1]["pu_to_pay"], abs=1e-5)
    assert error.existing_pu["delivered"] == pytest.approx(frame.iloc[0]["estimated_pu"])


@pytest.mark.parametrize("temporal", ["orbit", "requests"])
def test_a_series_run_twice_pays_once_and_its_estimate_sees_the_delivery(env, temporal):
    emu, client, root = env
    gdf = _fields().iloc[[0, 6]]
    series = {"freq": "10D", "temporal": temporal}
    _buy(emu, client, gdf.iloc[[0]], f"{root}/s", **series)  # one of the two rows first
    frame, error, charged = _below_then_at(emu, client, gdf, f"{root}/s", **series)
    assert charged == pytest.approx(frame.attrs["pu_to_pay"], abs=1e-5)
    assert error.existing_pu["delivered"] > 0
    # after both runs: every request delivered, nothing to pay; a third run buys nothing
    after = gdf.xasync.estimate(NDVI, **_kw(emu, f"{root}/s", **series))
    assert after.attrs["delivery_checked"]
    assert (after["request_state"] == "delivered").all()
    assert (after["pu_to_pay"] == 0).all() and after.attrs["pu_to_pay"] == 0.0
    assert (after["estimated_pu"] > 0).all()
    assert len(after) == (2 if temporal == "orbit" else 2 * 3)  # 3 intervals in June
    creates = _creates(emu)
    _buy(emu, client, gdf, f"{root}/s", max_pu=0.001, **series)
    assert _creates(emu) == creates


def test_a_packed_series_run_twice_buys_nothing_the_second_time(env):
    emu, client, root = env
    gdf = _fields().iloc[:6]  # one cluster: packed together
    series = {"freq": "10D", **PACK}
    first = gdf.xasync.estimate(NDVI, **_kw(emu, f"{root}/p", **series))
    assert first.attrs["pu_to_pay"] == first.attrs["total_pu"] > 0
    assert set(first["request_state"]) == {"new"}
    _buy(emu, client, gdf, f"{root}/p", max_pu=first.attrs["pu_to_pay"], **series)
    assert _charged(emu) == pytest.approx(first.attrs["pu_to_pay"], abs=1e-5)
    creates = _creates(emu)
    after = gdf.xasync.estimate(NDVI, **_kw(emu, f"{root}/p", **series))
    assert set(after["request_state"]) == {"delivered"} and after.attrs["pu_to_pay"] == 0.0
    _buy(emu, client, gdf, f"{root}/p", max_pu=0.001, **series)
    assert _creates(emu) == creates


def test_running_requests_are_not_counted_twice(env):
    emu, client, root = env
    gdf = _fields().iloc[:3]
    with emu.hold():
        running = gdf.xasync.process(NDVI, client=client, **_kw(emu, f"{root}/r"))
        for _ in range(1200):  # the submitter creates them in the background (bounded wait)
            if _creates(emu) >= 3:
                break
            time.sleep(0.05)
        assert _creates(emu) == 3
        with pytest.raises(xasync.BudgetExceeded) as info:  # one new row: 10 PU
            _fields().iloc[:4].xasync.process(
                NDVI, client=client, max_pu=5, **_kw(emu, f"{root}/r")
            )
        assert info.value.requests == 1 and info.value.estimate_pu == pytest.approx(10.0)
        assert info.value.existing_pu["running"] == pytest.approx(30.0)
        assert "30.00 PU running" in str(info.value)
        assert _creates(emu) == 3
        emu.release()
    assert running.wait(timeout=WAIT_S, progress=False) is running


def test_failed_requests_count_only_when_bought_again(env):
    emu, client, root = env
    gdf = _fields().iloc[:2]
    emu.configure(faults=Faults(failure_rate=1.0))
    _buy(emu, client, gdf, f"{root}/f")
    emu.configure(faults=Faults())
    creates = _creates(emu)
    _buy(emu, client, gdf, f"{root}/f", max_pu=0.001)  # failed, not bought again: 0 PU
    assert _creates(emu) == creates
    with pytest.raises(xasync.BudgetExceeded) as info:
        gdf.xasync.process(
            NDVI, client=client, max_pu=15, resubmit_failed=True, **_kw(emu, f"{root}/f")
        )
    assert info.value.estimate_pu == pytest.approx(20.0) and info.value.requests == 2
    assert "failed" not in info.value.existing_pu  # they are bought again: counted
    assert _creates(emu) == creates


def test_a_bad_budget_is_refused_in_every_mode_before_anything_is_bought(env):
    emu, client, root = env
    gdf = _fields().iloc[:2]
    for kw in ({}, TILED, PACK, {"freq": "10D"}):
        for bad in ("10", -1, math.nan, True):
            with pytest.raises(xasync.ValidationError, match="max_pu must be"):
                gdf.xasync.process(NDVI, client=client, max_pu=bad, **_kw(emu, f"{root}/x", **kw))
    assert _creates(emu) == 0
