"""Each fault knob is observable over HTTP."""

from __future__ import annotations

import math
import random
import time

import httpx
import pytest
from emu_helpers import (
    CLOCK_SLACK,
    LEGACY,
    PLANET,
    get_token,
    keys,
    make_body,
    read_json,
    service_times,
    wait_for,
    wait_gone,
)

from xasync import _contract as C
from xasync.emulator import Faults

pytestmark = pytest.mark.faults


def test_rate_limit_probability(emu, api, out_bucket):
    emu.configure(faults=Faults(rate_limit=0.5, retry_after_ms=1234, seed=7))
    codes = [api.get(f"{LEGACY}/x").status_code for _ in range(60)]
    n429 = codes.count(429)
    assert 15 <= n429 <= 45, codes
    assert set(codes) == {404, 429}
    r = next(r for r in (api.get(f"{LEGACY}/x") for _ in range(50)) if r.status_code == 429)
    assert r.headers["Retry-After"] == "1234"
    assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert emu.stats["rate_limited"] >= n429 + 1


def test_faults_are_reproducible_with_a_seed(emu, api):
    runs = []
    for _ in range(2):
        emu.configure(faults=Faults(rate_limit=0.3, server_error=0.3, seed=42))
        runs.append([api.get(f"{LEGACY}/x").status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert {404, 429} < set(runs[0])
    assert set(runs[0]) & {500, 502, 503}


def test_server_errors(emu, api, out_bucket):
    emu.configure(faults=Faults(server_error=1.0))
    codes = {api.post(LEGACY, json=make_body(out_bucket)).status_code for _ in range(20)}
    assert codes <= {500, 502, 503}
    assert len(codes) >= 2
    r = api.get(f"{PLANET}/x")
    assert r.json()["error"]["status"] == r.status_code
    assert emu.stats["server_errors"] == 21
    assert emu.stats["creates"] == 0


def test_token_endpoint_untouched_unless_asked(emu):
    emu.configure(faults=Faults(rate_limit=1.0))
    assert get_token(emu)
    emu.configure(faults=Faults(rate_limit=1.0, apply_to_token=True))
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    assert r.status_code == 429


def test_dropped_connection_before_accept(emu, api, out_bucket):
    emu.configure(faults=Faults(drop_connection=1.0, drop_after_accept=0.0))
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(LEGACY, json=make_body(out_bucket))
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(f"{LEGACY}/x")
    stats = emu.stats
    assert stats["dropped"] == 2
    assert stats["creates"] == 0
    assert keys(emu.s3.client(), out_bucket) == set()


def test_dropped_connection_after_accept_still_runs(emu, api, out_bucket, s3c):
    emu.configure(faults=Faults(drop_connection=1.0, drop_after_accept=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(LEGACY, json=make_body(out_bucket))
    stats = emu.stats
    assert stats["creates"] == 1
    assert stats["dropped_after_accept"] == 1
    # The client never saw the id, but the request copy tells it what it paid for.
    copies = [k for k in keys(s3c, out_bucket) if k.endswith(C.REQUEST_COPY_FILE)]
    assert len(copies) == 1
    rid = read_json(s3c, out_bucket, copies[0])["id"]
    emu.configure(faults=Faults())
    wait_gone(api, rid)
    assert f"out/{rid}/default.tif" in keys(s3c, out_bucket)


def test_failure_rate(emu, api, out_bucket, s3c):
    emu.configure(faults=Faults(failure_rate=1.0))
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    wait_gone(api, rid)
    assert keys(s3c, out_bucket, f"out/{rid}/") == {
        f"out/{rid}/{C.ERROR_FILE}",
        f"out/{rid}/{C.REQUEST_COPY_FILE}",
    }
    assert "Injected failure" in read_json(s3c, out_bucket, f"out/{rid}/{C.ERROR_FILE}")["message"]
    assert emu.stats["failed"] == 1


def test_visibility_delay(emu, api, out_bucket, s3c):
    delay = 1.0
    emu.configure(faults=Faults(visibility_delay=delay))
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    wait_gone(api, rid)
    _, finished = service_times(emu, rid)
    listed = keys(s3c, out_bucket)
    if time.time() < finished + delay:  # the listing surely ran before the uploads were due
        assert f"out/{rid}/default.tif" not in listed
    wait_for(lambda: f"out/{rid}/default.tif" in keys(s3c, out_bucket))
    # the upload came `delay` after the status turned 404 (S3 times are whole seconds)
    uploaded = s3c.head_object(Bucket=out_bucket, Key=f"out/{rid}/default.tif")["LastModified"]
    assert uploaded.timestamp() >= math.floor(finished + delay)


def test_processing_jitter(emu, api, out_bucket):
    """Each request runs at least its seeded jitter, measured on the service's side."""
    jitter, seed, n = 1.5, 3, 6
    emu.configure(
        processing_seconds=0.0,
        faults=Faults(processing_jitter=jitter, seed=seed),
        concurrency_limit=10,
    )
    ids = [api.post(LEGACY, json=make_body(out_bucket, size=(4, 4))).json()["id"] for _ in range(n)]
    for rid in ids:
        wait_gone(api, rid)
    # the only draws of the seeded RNG here are the jitters, one per accepted request, in order
    rng = random.Random(seed)
    drawn = [rng.uniform(0.0, jitter) for _ in ids]
    assert max(drawn) - min(drawn) > 0.3  # the seed gives jitters worth telling apart
    for rid, extra in zip(ids, drawn):
        accepted, finished = service_times(emu, rid)
        assert finished - accepted >= extra - CLOCK_SLACK, (rid, extra)
