"""The cost known before paying: ``estimate``'s ``pu_to_pay`` is what ``process`` is then charged.

Each case estimates with the delivery, then runs ``process`` with the same arguments and compares
the PU the emulator charged in between (``stats["processing_units"]``, the sum of the costs it
writes into the request copies) with ``attrs["pu_to_pay"]``.
"""

from __future__ import annotations

import time

import pytest

from xasync.emulator import Faults
from xasync.errors import DeliveryAccessError

from .test_pack_reuse import NDVI, TIME, WAIT_S, _fields

PACK = {"pack": True, "pack_max_px": 400}


def _kw(emu, delivery, **kw):
    base = {"time": TIME, "resolution": 10, "crs": "utm", "mask": True, "delivery": delivery}
    return {**base, "storage_options": emu.storage_options, **kw}


def _charged(emu) -> float:
    return float(emu.stats["processing_units"])


def _estimate_then_process(emu, client, gdf, delivery, **kw):
    """``(estimate frame, PU charged by the process call that follows it, results)``."""
    frame = gdf.xasync.estimate(NDVI, **_kw(emu, delivery, **kw))
    before, creates = _charged(emu), int(emu.stats["creates"])
    res = gdf.xasync.process(NDVI, client=client, **_kw(emu, delivery, **kw))
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    bought = int(emu.stats["creates"]) - creates
    pairs = {
        (r, state)
        for reqs, states in zip(frame["requests"], frame["request_state"], strict=True)
        for r, state in zip(reqs.split(), states.split(), strict=True)
    }
    assert bought == sum(state == "new" for _, state in pairs)  # one create per new request
    return frame, _charged(emu) - before, res


@pytest.fixture
def env(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    return emu, client, root


@pytest.mark.parametrize(
    ("rows", "kw"),
    [
        (slice(0, 5), {}),  # unpacked
        (slice(0, 2), {"max_request_px": 8}),  # tiled
        (slice(0, 12), PACK),  # packed
    ],
    ids=["unpacked", "tiled", "packed"],
)
def test_pu_to_pay_is_what_process_charges_on_a_fresh_delivery(env, rows, kw):
    emu, client, root = env
    frame, charged, _ = _estimate_then_process(emu, client, _fields().iloc[rows], f"{root}/a", **kw)
    assert frame.attrs["delivery_checked"]
    assert set(" ".join(frame["request_state"]).split()) == {"new"}
    assert frame.attrs["pu_to_pay"] == pytest.approx(frame.attrs["total_pu"])
    assert charged == pytest.approx(frame.attrs["pu_to_pay"], abs=1e-5)
    assert frame["pu_to_pay"].sum() == pytest.approx(frame.attrs["pu_to_pay"])


@pytest.mark.parametrize(
    "kw", [{}, PACK, {"max_request_px": 8}], ids=["unpacked", "packed", "tiled"]
)
def test_a_rerun_after_a_partial_delivery_pays_only_what_is_missing(env, kw):
    emu, client, root = env
    gdf = _fields()
    _estimate_then_process(emu, client, gdf.iloc[[0, 1, 6]], f"{root}/b")  # three alone
    frame, charged, res = _estimate_then_process(emu, client, gdf, f"{root}/b", **kw)
    assert frame.attrs["pu_to_pay"] < frame.attrs["total_pu"]
    assert charged == pytest.approx(frame.attrs["pu_to_pay"], abs=1e-5)
    for label in gdf.index[[0, 1, 6]]:
        assert frame.loc[label, "request_state"] == "delivered"
        assert frame.loc[label, "pu_to_pay"] == 0.0 and frame.loc[label, "estimated_pu"] > 0
    assert list(frame["requests"]) == [
        " ".join(u.rsplit("/", 1)[-1] for u in r.split()) for r in res.status()["requests"]
    ]
    again, charged, _ = _estimate_then_process(emu, client, gdf, f"{root}/b", **kw)
    assert again.attrs["pu_to_pay"] == 0.0 and charged == 0.0
    assert set(" ".join(again["request_state"]).split()) == {"delivered"}


def test_rows_of_a_pack_asked_alone_are_estimated_free_as_process_buys_nothing(env):
    emu, client, root = env
    gdf = _fields()
    _, paid, _ = _estimate_then_process(emu, client, gdf, f"{root}/c", **PACK)
    assert paid > 0
    frame, charged, _ = _estimate_then_process(emu, client, gdf.iloc[[0, 4, 9]], f"{root}/c")
    assert charged == 0.0 and frame.attrs["pu_to_pay"] == 0.0
    assert set(frame["request_state"]) == {"delivered"}
    assert (frame["estimated_pu"] > 0).all()  # the full price stays visible


def test_running_and_failed_requests_are_marked_and_not_counted(env):
    emu, client, root = env
    gdf = _fields().iloc[:4]
    emu.configure(faults=Faults(failure_rate=1.0))
    failed = gdf.xasync.process(NDVI, client=client, **_kw(emu, f"{root}/d"))
    assert failed.wait(timeout=WAIT_S, progress=False) is not None
    emu.configure(faults=Faults())
    frame = gdf.xasync.estimate(NDVI, **_kw(emu, f"{root}/d"))
    assert set(frame["request_state"]) == {"failed"} and frame.attrs["pu_to_pay"] == 0.0
    again = gdf.xasync.estimate(NDVI, resubmit_failed=True, **_kw(emu, f"{root}/d"))
    assert again.attrs["pu_to_pay"] == pytest.approx(again.attrs["total_pu"])
    other = _fields().iloc[6:8]
    with emu.hold():
        running = other.xasync.process(NDVI, client=client, **_kw(emu, f"{root}/d"))
        for _ in range(1200):  # the submitter creates them in the background (bounded wait)
            if int(emu.stats["creates"]) >= 4 + 2:
                break
            time.sleep(0.05)
        frame = other.xasync.estimate(NDVI, **_kw(emu, f"{root}/d"))
        assert set(frame["request_state"]) == {"running"} and frame.attrs["pu_to_pay"] == 0.0
        emu.release()
    assert running.wait(timeout=WAIT_S, progress=False) is not None


def test_an_unreadable_delivery_falls_back_or_raises_a_typed_error(env):
    emu, _, root = env
    gdf = _fields().iloc[:3]
    closed = {**emu.storage_options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    closed["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 2}
    kw = {"time": TIME, "resolution": 10, "crs": "utm", "delivery": f"{root}/e"}
    frame = gdf.xasync.estimate(NDVI, storage_options=closed, **kw)
    assert not frame.attrs["delivery_checked"]
    assert set(frame["request_state"]) == {"unknown"}
    assert frame["pu_to_pay"].tolist() == frame["estimated_pu"].tolist()
    with pytest.raises(DeliveryAccessError) as err:
        gdf.xasync.estimate(NDVI, storage_options=closed, check_delivery=True, **kw)
    assert emu.storage_options["secret"] not in str(err.value)
    offline = gdf.xasync.estimate(NDVI, check_delivery=False, **kw)  # no look, no network
    assert not offline.attrs["delivery_checked"]
    assert offline["estimated_pu"].tolist() == frame["estimated_pu"].tolist()
