"""When files appear (issue 12 item 1) and the service-side times in the stats (hold/release)."""

from __future__ import annotations

import time

import httpx
import pytest
from emu_helpers import LEGACY, keys, make_body, read_json, wait_for, wait_gone

from xasync import _contract as C


def _copy_key(rid: str) -> str:
    return f"out/{rid}/{C.REQUEST_COPY_FILE}"


def test_held_request_folder_holds_only_the_copy(emu, api, s3c, out_bucket):
    emu.configure(processing_seconds=0.0)
    with emu.hold():
        rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
        wait_for(lambda: rid in emu.waiting)  # its work is done, it waits for the release
        assert keys(s3c, out_bucket, f"out/{rid}/") == {_copy_key(rid)}
        copy = read_json(s3c, out_bucket, _copy_key(rid))
        assert copy["status"] == "RUNNING"
        assert C.REQUEST_COPY_COST_FIELD not in copy
        assert api.get(f"{LEGACY}/{rid}").json() == {"id": rid, "status": "RUNNING"}
        assert emu.stats["requests_running"] == 1
    wait_gone(api, rid)
    # At the first 404 the outputs and the cost-updated copy are already there.
    assert keys(s3c, out_bucket, f"out/{rid}/") == {_copy_key(rid), f"out/{rid}/default.tif"}
    copy = read_json(s3c, out_bucket, _copy_key(rid))
    assert copy["status"] == "DONE"
    assert copy[C.REQUEST_COPY_COST_FIELD] == pytest.approx(C.MIN_COST_PU)


def test_three_second_request_has_no_output_while_running(emu, api, s3c, out_bucket):
    """Without holding: 1 s into a 3 s request there is only the copy (no margin asserted:
    the status is checked to be RUNNING after the listing, so the listing saw a running one)."""
    emu.configure(processing_seconds=3.0)
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    time.sleep(1.0)
    listed = keys(s3c, out_bucket, f"out/{rid}/")
    if api.get(f"{LEGACY}/{rid}").status_code == 200:
        assert listed == {_copy_key(rid)}
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket, f"out/{rid}/")


def test_failed_request_writes_error_json_only_at_the_end(emu, api, s3c, out_bucket):
    emu.configure(processing_seconds=0.0)
    bad = "//VERSION=3\nfunction setup(){return {input:['B04'],output:{bands:1}}}\n"
    bad += "function evaluatePixel(s){ throw new Error('boom'); }"
    with emu.hold():
        rid = api.post(LEGACY, json=make_body(out_bucket, script=bad)).json()["id"]
        wait_for(lambda: rid in emu.waiting)
        assert keys(s3c, out_bucket, f"out/{rid}/") == {_copy_key(rid)}
    wait_gone(api, rid)
    assert f"out/{rid}/{C.ERROR_FILE}" in keys(s3c, out_bucket, f"out/{rid}/")
    assert "boom" in read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert read_json(s3c, out_bucket, _copy_key(rid))["status"] == "FAILED"


def test_release_one_request_by_id(emu, api, s3c, out_bucket):
    emu.configure(processing_seconds=0.0, concurrency_limit=5)
    with emu.hold():
        first, second = (api.post(LEGACY, json=make_body(out_bucket)).json()["id"] for _ in "ab")
        wait_for(lambda: {first, second} <= set(emu.waiting))
        emu.release(first)
        wait_gone(api, first)
        assert api.get(f"{LEGACY}/{second}").status_code == 200
        assert keys(s3c, out_bucket, f"out/{second}/") == {_copy_key(second)}
    wait_gone(api, second)


def test_hold_and_release_over_http(emu, api, s3c, out_bucket):
    emu.configure(processing_seconds=0.0)
    assert httpx.post(f"{emu.base_url}/emulator/hold", timeout=10).status_code == 200
    try:
        rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
        wait_for(lambda: rid in emu.waiting)
        assert keys(s3c, out_bucket, f"out/{rid}/") == {_copy_key(rid)}
    finally:
        r = httpx.post(f"{emu.base_url}/emulator/release", json={}, timeout=10)
    assert r.status_code == 200
    wait_gone(api, rid)


def test_reset_abandons_held_requests(emu, api, s3c, out_bucket):
    emu.configure(processing_seconds=0.0)
    emu.hold()
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    wait_for(lambda: rid in emu.waiting)
    emu.reset()
    wait_for(lambda: rid not in emu.waiting)
    assert api.get(f"{LEGACY}/{rid}").status_code == 404  # forgotten
    assert keys(s3c, out_bucket, f"out/{rid}/") == {_copy_key(rid)}  # nothing delivered
    rid2 = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]  # no hold after reset
    wait_gone(api, rid2)


def test_stats_requests_give_service_side_times(emu, api, out_bucket):
    emu.configure(processing_seconds=0.0, concurrency_limit=5)
    t0 = time.time()
    bad = "//VERSION=3\nfunction setup(){return {input:['B04'],output:{bands:1}}}\n"
    bad += "function evaluatePixel(s){ throw new Error('boom'); }"
    with emu.hold():
        ok_id = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
        bad_id = api.post(LEGACY, json=make_body(out_bucket, script=bad)).json()["id"]
        wait_for(lambda: {ok_id, bad_id} <= set(emu.waiting))
        running = {r["id"]: r for r in emu.stats["requests"]}
        assert running[ok_id]["finished"] is None and running[ok_id]["ok"] is None
        assert running[ok_id]["account"] == emu.client_id
        t_release = time.time()
    wait_gone(api, ok_id)
    wait_gone(api, bad_id)
    over_http = httpx.get(f"{emu.base_url}/emulator/stats", timeout=10).json()
    for stats in (emu.stats, over_http):
        by_id = {r["id"]: r for r in stats["requests"]}
        assert set(by_id) == {ok_id, bad_id}
        assert t0 <= by_id[ok_id]["accepted"] <= t_release <= by_id[ok_id]["finished"]
        assert by_id[ok_id]["ok"] is True
        assert by_id[bad_id]["ok"] is False
        assert stats["creates"] == 2 and stats["finished"] == 2  # older keys still there


def test_calls_give_each_handler_time_in_order(emu, api, out_bucket):
    """``Emulator.calls()`` (and ``GET /emulator/calls``): kind, request id, HTTP status and the
    handler's entry and answer times of each create and status call."""
    emu.configure(processing_seconds=0.0)
    t0 = time.time()
    with emu.hold():
        rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
        assert api.post(LEGACY, json={"input": {}}).status_code == 400
        assert api.get(f"{LEGACY}/{rid}").status_code == 200
    wait_gone(api, rid)
    over_http = httpx.get(f"{emu.base_url}/emulator/calls", timeout=10).json()
    for calls in (emu.calls(), over_http):
        mine = [c for c in calls if c["start"] >= t0]
        assert [(c["kind"], c["id"], c["status"]) for c in mine[:3]] == [
            ("create", rid, 200),
            ("create", None, 400),
            ("status", rid, 200),
        ]
        later = [(c["kind"], c["id"], c["status"]) for c in mine[3:]]
        assert later[-1] == ("status", rid, 404)  # released: RUNNING for a moment, then 404
        assert set(later) <= {("status", rid, 200), ("status", rid, 404)}
        assert all(t0 <= c["start"] <= c["end"] <= time.time() for c in mine)
        starts = [c["start"] for c in mine]
        assert starts == sorted(starts)
    emu.reset()
    assert emu.calls() == []
