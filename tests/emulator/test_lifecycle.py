"""Create / status lifecycle over HTTP: both path styles, 404 after finish, 429 over the limit."""

from __future__ import annotations

import uuid

import httpx
import pytest
from emu_helpers import (
    CLOCK_SLACK,
    LEGACY,
    PLANET,
    keys,
    make_body,
    read_json,
    service_times,
    wait_gone,
)

from xasync import _contract as C


@pytest.mark.parametrize("path", [LEGACY, PLANET])
def test_create_status_finish(emu, api, s3c, out_bucket, path):
    with emu.hold():  # RUNNING until released, however slow the machine is
        r = api.post(path, json=make_body(out_bucket))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "RUNNING"
        rid = body["id"]
        assert uuid.UUID(rid).version == 4
        # The request copy exists as soon as create answered, credentials redacted.
        copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
        assert copy["status"] == "RUNNING"
        assert copy["output"]["delivery"]["s3"]["secretAccessKey"] == "***"
        assert "very-secret-delivery-key" not in str(copy)
        status = api.get(f"{path}/{rid}")
        assert status.status_code == 200
        assert status.json() == {"id": rid, "status": "RUNNING"}
    polls = wait_gone(api, rid)
    # RUNNING for at least processing_seconds (0.2 in the fixture), on the service's clock
    accepted, finished = service_times(emu, rid)
    assert finished - accepted >= 0.2 - CLOCK_SLACK
    gone = api.get(f"{path}/{rid}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "COMMON_NOT_FOUND"
    assert gone.json()["error"]["status"] == 404
    # Outputs were written before the status turned 404.
    assert keys(s3c, out_bucket, f"out/{rid}/") == {
        f"out/{rid}/default.tif",
        f"out/{rid}/{C.REQUEST_COPY_FILE}",
    }
    copy = read_json(s3c, out_bucket, f"out/{rid}/{C.REQUEST_COPY_FILE}")
    assert copy["status"] == "DONE"
    assert copy[C.REQUEST_COPY_COST_FIELD] == pytest.approx(C.MIN_COST_PU)
    stats = emu.stats
    assert stats["creates"] == 1
    assert stats["create_calls"] == 1
    assert stats["creates_by_prefix"] == {f"s3://{out_bucket}/out": 1}
    assert stats["finished"] == 1
    assert stats["succeeded"] == 1
    assert stats["requests_running"] == 0
    assert stats["status_calls"] == 1 + polls + 1  # every status call this test made counted


def test_unknown_id_is_404(api):
    r = api.get(f"{PLANET}/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.json()["error"]["reason"] == "Not Found"


@pytest.mark.parametrize("path", [LEGACY, PLANET])
def test_no_token_is_401(emu, out_bucket, path):
    r = httpx.post(f"{emu.base_url}{path}", json=make_body(out_bucket))
    assert r.status_code == 401
    assert r.json()["error"]["status"] == 401
    assert emu.stats["creates"] == 0


def test_concurrency_limit_gives_429_with_retry_after_ms(emu, api, out_bucket):
    emu.configure(concurrency_limit=2, processing_seconds=1.0)
    with emu.hold():  # both stay RUNNING however slow the machine is
        ids = [api.post(LEGACY, json=make_body(out_bucket)).json()["id"] for _ in range(2)]
        r = api.post(LEGACY, json=make_body(out_bucket))
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        retry_ms = int(r.headers["Retry-After"])
        assert 100 <= retry_ms <= 1000
        stats = emu.stats
        assert stats["rate_limited"] == 1
        assert stats["creates"] == 2
        assert stats["max_running"] == 2
    for rid in ids:
        wait_gone(api, rid)
    assert api.post(LEGACY, json=make_body(out_bucket)).status_code == 200


def test_reset_forgets_running_requests(emu, api, out_bucket, s3c):
    emu.configure(processing_seconds=0.5)
    emu.hold()  # RUNNING at the reset however slow the machine is (the reset releases it)
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    emu.reset()
    assert api.get(f"{LEGACY}/{rid}").status_code == 404
    assert emu.stats["creates"] == 0
    import time

    time.sleep(0.8)
    # The abandoned request delivers nothing.
    assert keys(s3c, out_bucket, f"out/{rid}/") == {f"out/{rid}/{C.REQUEST_COPY_FILE}"}


def test_secrets_stay_out_of_logs_stats_and_reprs(emu, api, out_bucket, caplog):
    import logging

    caplog.set_level(logging.DEBUG, logger="xasync")
    rid = api.post(LEGACY, json=make_body(out_bucket)).json()["id"]
    wait_gone(api, rid)
    bad = make_body(out_bucket)
    bad["output"]["width"] = 0
    assert api.post(LEGACY, json=bad).status_code == 400
    assert rid in caplog.text  # the log did record the request
    blob = caplog.text + repr(emu.stats) + repr(emu) + repr(emu.s3)
    for secret in (emu.client_secret, "very-secret-delivery-key", api.headers["Authorization"]):
        assert secret not in blob


def test_concurrency_is_per_account_and_status_is_private(emu, api, out_bucket):
    emu.configure(concurrency_limit=1, processing_seconds=1.0)
    other_id, other_secret = emu.add_client()
    token = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": other_id,
            "client_secret": other_secret,
        },
    ).json()["access_token"]
    other = httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {token}"})
    with other, emu.hold():  # the requests stay RUNNING however slow the machine is
        mine = api.post(LEGACY, json=make_body(out_bucket))
        assert mine.status_code == 200
        assert api.post(LEGACY, json=make_body(out_bucket)).status_code == 429
        theirs = other.post(LEGACY, json=make_body(out_bucket))
        assert theirs.status_code == 200
        assert emu.stats["requests_running"] == 2
        assert other.get(f"{LEGACY}/{mine.json()['id']}").status_code == 404
        assert api.get(f"{LEGACY}/{mine.json()['id']}").status_code == 200


def test_stop_releases_ports_and_threads():
    import socket
    import threading

    from xasync.emulator import Emulator

    before = set(threading.enumerate())
    with Emulator(processing_seconds=0.05) as emu:
        ports = [int(u.rsplit(":", 1)[1]) for u in (emu.base_url, emu.s3_endpoint_url)]
        assert httpx.get(f"{emu.base_url}{LEGACY}/x").status_code == 401
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    leftover = [
        t.name
        for t in set(threading.enumerate()) - before
        if t.name.startswith("xasync-emu") and t.is_alive()
    ]
    assert leftover == []
