"""Rows read from other calls' requests (packs, tiles) not created yet; claims taken over.

A process that died between claiming a pack and creating it leaves a manifest that lists the
pack and a claim in the pack's folder, and nothing else; one whose packs wait for a slot leaves
only the manifest. Such a process is simulated with the real code paths: the call's specs, plan
and manifest are made and written by xasync's own functions, and its claims by
:func:`xasync.submitter.claim.take`; then nothing is created. A second call of the same rows in
this process is held behind a request the emulator holds. Every count is the emulator's create
counter; no assertion rests on a time margin (a claim goes stale after ``claim_timeout``, a
bound that only makes the test wait).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xasync
from xasync.bought_alone import look_before_planning
from xasync.callsubmit import Call, write_manifest
from xasync.pack_reuse import plan_reusing
from xasync.request import build_specs
from xasync.specrows import read_plans
from xasync.submitter import claim

from ._shared import until as _until
from .test_pack_reuse import NDVI, TIME, WAIT_S, _fields

PACK = {"pack": True, "pack_max_px": 400}
#: Seconds after which the dead process's claims are stale (the tests wait for it, no margin).
CLAIM_TIMEOUT = 2.0


def _run(gdf, emu, client, delivery, *, wait=True, **kw):
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        mask=True,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        options=xasync.SubmitOptions(claim_timeout=CLAIM_TIMEOUT, ambiguous_grace=0.05),
        **kw,
    )
    if wait:
        assert res.wait(timeout=WAIT_S, progress=False) is not None
    return res


def _creates(emu) -> int:
    return int(emu.stats["creates"])


def dead_call(
    gdf, emu, delivery, *, max_request_px=10_000, claimed=True, mask=True, **kw
) -> list[str]:
    """Do what ``process`` does up to the claims of its requests, then die: the request URLs.

    The manifest is written by :func:`xasync.callsubmit.write_manifest` and each request's
    claim by :func:`xasync.submitter.claim.take`, as a process that was killed right after
    claiming (before any create) leaves them. ``claimed=False``: only the manifest, as a
    process leaves it while its requests wait for a slot (or when it died then).
    """
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options)
    specs = build_specs(
        gdf, NDVI, time=TIME, resolution=10, crs="utm", delivery=delivery, mask=mask, tiled=True
    )
    bought = look_before_planning(fs, delivery, required=True)
    planned = plan_reusing(specs, bought=bought, max_request_px=max_request_px, **kw)
    assert planned is not None
    pack, pack_max_px = kw.get("pack", False), kw.get("pack_max_px", 2500)
    call = Call(
        fs=fs,
        root=delivery,
        specs=specs,
        plans=read_plans(specs),
        labels=list(gdf.index),
        planned=planned,
        planning=(max_request_px, pack, pack_max_px),
    )
    write_manifest(call)
    urls = sorted({req.row_url for req in planned.requests})
    for url in urls if claimed else ():
        assert claim.take(fs, url, 0, "the-dead-process")[0] == claim.WON
    return urls


@pytest.mark.parametrize("dead_mask", [True, False], ids=["masked", "unmasked"])
def test_rows_of_a_pack_claimed_by_a_dead_process_are_bought_not_failed(e2e, dead_mask):
    """Asked alone, rows of a pack only claimed by a dead process: the pack is bought once.

    The dead call's ``mask`` decides where its manifest keeps the rows' geometries (their read
    plans with ``mask=True``, their bodies' GeoJSON without): the pack is rebuilt from either.
    """
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields()
    packs = dead_call(gdf, emu, f"{root}/d", mask=dead_mask, **PACK)
    assert 2 <= len(packs) <= 4 and _creates(emu) == 0
    alone = _run(gdf, emu, client, f"{root}/d")  # pack=False: each row alone
    status = alone.status()
    assert (status["state"] == "done").all(), status["error"].tolist()
    assert _creates(emu) == len(packs)  # the claimed packs, bought after the claims went stale
    assert sorted(set(status["requests"])) == packs
    fresh = _run(gdf, emu, client, f"{root}/fresh")
    for label in gdf.index:
        np.testing.assert_array_equal(alone[label]["ndvi"].values, fresh[label]["ndvi"].values)
    bought = _creates(emu)
    for kw in ({}, PACK):  # delivered now: nothing is bought again, packed or not
        again = _run(gdf, emu, client, f"{root}/d", **kw)
        assert _creates(emu) == bought
        assert (again.status()["state"] == "done").all()


def test_tiles_claimed_by_a_dead_process_are_bought_not_failed(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields().iloc[:2]
    tiles = dead_call(gdf, emu, f"{root}/t", max_request_px=8)
    assert len(tiles) > 2
    whole = _run(gdf, emu, client, f"{root}/t")  # one request per row asked: tiles are read
    assert (whole.status()["state"] == "done").all(), whole.status()["error"].tolist()
    assert _creates(emu) == len(tiles)
    fresh = _run(gdf, emu, client, f"{root}/fresh")
    for label in gdf.index:
        np.testing.assert_array_equal(whole[label]["ndvi"].values, fresh[label]["ndvi"].values)


@pytest.mark.parametrize("kw", [{}, PACK], ids=["alone", "packed"])
def test_rows_claimed_alone_by_a_dead_process_are_bought_once(e2e, kw):
    """The dead process claimed the rows' own requests: a packed or plain call buys them."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields().iloc[:3]
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options)
    specs = build_specs(
        gdf, NDVI, time=TIME, resolution=10, crs="utm", delivery=f"{root}/a", mask=True
    )
    for spec in specs:  # claimed alone, never created
        assert claim.take(fs, spec.row_url, 0, "the-dead-process")[0] == claim.WON
    res = _run(gdf, emu, client, f"{root}/a", **kw)
    status = res.status()
    assert (status["state"] == "done").all(), status["error"].tolist()
    assert _creates(emu) == len(gdf)
    assert sorted(status["requests"]) == sorted(s.row_url for s in specs)


RUNNER = Path(__file__).with_name("reuse_claims_runner.py")
#: The racers' ``claim_timeout``: the dead claims are older when they start, and the winner's
#: fresh claim must stay fresh until it created its request (a bound, not a measured margin).
RACE_CLAIM_TIMEOUT = 10.0


def _until_stale(emu, urls, timeout: float) -> None:
    """Wait until the claims at ``urls`` (generation 0) are older than ``timeout`` in S3."""
    import datetime as dt

    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options)
    for _ in range(int(timeout * 10) + 600):  # bounded: at most a minute past the timeout
        now = dt.datetime.now(dt.timezone.utc)
        ages = [
            (now - fs.info(claim.claim_path(u, 0))["LastModified"]).total_seconds() for u in urls
        ]
        if min(ages) > timeout:
            return
        time.sleep(0.1)
    pytest.fail("the dead claims never went stale")


def test_two_processes_racing_for_a_dead_process_s_packs_buy_each_once(e2e, tmp_path):
    """Both see the dead process's claims stale at once: each pack is still bought once.

    Taking a stale claim over used to delete it and claim again: a racer that had seen the
    stale claim could delete the winner's fresh claim and buy a second time.
    """
    emu, _client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    delivery = f"{root}/race"
    packs = dead_call(_fields(), emu, delivery, **PACK)
    _until_stale(emu, packs, RACE_CLAIM_TIMEOUT)
    go = tmp_path / "go"
    env = dict(os.environ)
    env.update(
        XASYNC_RC_BASE_URL=emu.base_url,
        XASYNC_RC_TOKEN_URL=emu.token_url,
        XASYNC_RC_CLIENT_ID=emu.client_id,
        XASYNC_RC_CLIENT_SECRET=emu.client_secret,
        XASYNC_RC_STORAGE_OPTIONS=json.dumps(emu.storage_options),
        XASYNC_RC_DELIVERY=delivery,
        XASYNC_RC_GO_FILE=str(go),
        XASYNC_RC_CLAIM_TIMEOUT=str(RACE_CLAIM_TIMEOUT),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(RUNNER)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        outs.append(json.loads(out.split("RESULT ", 1)[1]))
    for out in outs:
        assert out["states"] == ["done"] * 12, out["errors"]
        assert sorted(set(out["requests"])) == packs
    assert _creates(emu) == len(packs), emu.stats["creates_by_prefix"]


# -- a second call while the first call's packs wait for a slot (not claimed, not created) ----


@pytest.fixture
def one_slot(e2e):
    """``(emu, client, root)``: a client of one slot, that slot taken by a held request.

    The account is new (the submitter keeps an account per client id for the process): it has
    learnt no durations, so its queued requests claim nothing before they get the slot.
    """
    emu, _client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    client_id, secret = emu.add_client()
    client = xasync.Client.from_emulator(
        emu, client_id=client_id, client_secret=secret, concurrency=1
    )
    emu.hold()
    try:
        blocker = _run(_fields().iloc[:1], emu, client, f"{root}/blocker", wait=False)
        _until(lambda: _creates(emu) == 1, "the blocking request to be created")
        yield emu, client, root
    finally:
        emu.release()
        client.close()
    assert blocker.wait(timeout=WAIT_S, progress=False) is not None


@pytest.mark.parametrize("second", [PACK, {}], ids=["packed", "alone"])
def test_a_second_call_while_the_packs_wait_for_a_slot_attaches_to_them(one_slot, second):
    emu, client, root = one_slot
    gdf = _fields()
    first = _run(gdf, emu, client, f"{root}/q", wait=False, **PACK)
    packs = sorted(set(first.status()["requests"]))
    assert 2 <= len(packs) <= 4
    again = _run(gdf, emu, client, f"{root}/q", wait=False, **second)
    assert _creates(emu) == 1  # the blocker only: everything else waits for the slot
    emu.release()
    for res in (first, again):
        assert res.wait(timeout=WAIT_S, progress=False) is not None
        assert (res.status()["state"] == "done").all(), res.status()["error"].tolist()
        assert sorted(set(res.status()["requests"])) == packs
    assert _creates(emu) == 1 + len(packs)
    for label in gdf.index:
        np.testing.assert_array_equal(again[label]["ndvi"].values, first[label]["ndvi"].values)


@pytest.mark.parametrize("second", [PACK, {}], ids=["packed", "alone"])
def test_another_process_s_packs_not_claimed_yet_are_bought_as_planned_once(e2e, second):
    """Another process wrote its manifest; its packs wait for a slot there (nothing claimed).

    This call asks for all their rows: it buys those packs (with claims: the other process
    will find them and follow), never its rows alone beside them.
    """
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields()
    packs = dead_call(gdf, emu, f"{root}/m", claimed=False, **PACK)
    res = _run(gdf, emu, client, f"{root}/m", **second)
    status = res.status()
    assert (status["state"] == "done").all(), status["error"].tolist()
    assert sorted(set(status["requests"])) == packs
    assert _creates(emu) == len(packs)
    the_other = _run(gdf, emu, client, f"{root}/m", **PACK)  # what it finds: bought, once
    assert _creates(emu) == len(packs)
    assert sorted(set(the_other.status()["requests"])) == packs


def test_a_subset_of_another_process_s_unclaimed_packs_is_bought_as_planned_here(e2e):
    """Fewer rows than a pack not created yet: this call does not buy the other's pack (more
    pixels than asked for); it buys its own plan, as when nothing else exists."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    gdf = _fields()
    packs = dead_call(gdf, emu, f"{root}/s", claimed=False, **PACK)
    subset = gdf.iloc[[0, 1]]
    res = _run(subset, emu, client, f"{root}/s")
    assert (res.status()["state"] == "done").all()
    assert not set(res.status()["requests"]) & set(packs)
    assert _creates(emu) == len(subset)


# -- a claim held so long that another process took it over ---------------------------------
def test_a_claim_taken_over_while_its_holder_waited_for_a_slot_is_not_bought_twice(e2e):
    """Our early claim waits for the one slot until a racer judges it stale and takes it over
    (the next claim of the chain): when the slot frees, we follow the racer's request."""
    import s3fs

    from xasync.submitter import get_submitter

    emu, _client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.2)
    client_id, secret = emu.add_client()
    client = xasync.Client.from_emulator(
        emu, client_id=client_id, client_secret=secret, concurrency=1
    )
    fs = s3fs.S3FileSystem(**emu.storage_options)
    timeout = 12.0  # claims ahead only while 4 learned durations fit in it
    options = xasync.SubmitOptions(claim_timeout=timeout, ambiguous_grace=0.05)
    kw = dict(time=TIME, resolution=10, crs="utm", mask=True, client=client, options=options)
    kw.update(storage_options=emu.storage_options)
    try:  # the account learns its durations first: then it claims ahead of its slot
        _fields().iloc[6:9].xasync.process(NDVI, delivery=f"{root}/warm", **kw).wait(
            timeout=WAIT_S, progress=False
        )
        assert get_submitter().account(client).claims_early(timeout)
        before = _creates(emu)
        gdf = _fields().iloc[:2]
        with emu.hold():
            res = gdf.xasync.process(NDVI, delivery=f"{root}/over", **kw)
            _first, second = res.job.urls
            _until(lambda: fs.exists(claim.claim_path(second, 0)), "the early claim")
            time.sleep(timeout / 2 + 0.5)  # held longer than half the timeout (no assertion)
            assert _creates(emu) - before == 1  # the second still waits for the slot
            # a racer took the claim over and creates the request
            assert claim.take(fs, second, 0, "the-racer", 1)[0] == claim.WON
            spec = build_specs(
                gdf, NDVI, time=TIME, resolution=10, crs="utm", delivery=f"{root}/over"
            )[1]
            assert spec.row_url == second
            extras = {"accessKey": emu.storage_options["key"]}
            extras["secretAccessKey"] = emu.storage_options["secret"]
            other = xasync.Client.from_emulator(emu)
            try:
                other.api.create(spec.body(extras))
            finally:
                other.close()
        assert res.wait(timeout=WAIT_S, progress=False) is not None
        assert res.status()["state"].tolist() == ["done", "done"]
        assert _creates(emu) - before == 2  # ours for the first row, the racer's for the second
        assert res.status()["cost_pu"].iloc[1] == 0.0
    finally:
        emu.release()
        client.close()


def test_a_live_process_s_queued_packs_are_bought_once_by_another_process(e2e):
    """Process A's packed call waits for its one slot (held by A's blocker); this process asks
    for the same rows alone: it buys A's packs, and A follows them instead of buying them."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    client_id, secret = emu.add_client()  # A's account: K = 1
    env = dict(os.environ)
    env.update(
        XASYNC_RC_BASE_URL=emu.base_url,
        XASYNC_RC_TOKEN_URL=emu.token_url,
        XASYNC_RC_CLIENT_ID=client_id,
        XASYNC_RC_CLIENT_SECRET=secret,
        XASYNC_RC_CONCURRENCY="1",
        XASYNC_RC_STORAGE_OPTIONS=json.dumps(emu.storage_options),
        XASYNC_RC_DELIVERY=f"{root}/live",
        XASYNC_RC_BLOCKER=f"{root}/blocker",
        XASYNC_RC_PACK="1",
    )
    emu.hold()
    proc = subprocess.Popen(
        [sys.executable, str(RUNNER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # A's packed call returned: its manifest is written
        assert line.strip() == "QUEUED", proc.stderr.read()[-2000:] if proc.stderr else line
        assert _creates(emu) == 1  # A's blocker only: A's packs wait for its slot
        res = _run(_fields(), emu, client, f"{root}/live", wait=False)
        packs = sorted(set(res.status()["requests"]))
        assert 2 <= len(packs) <= 4
        _until(lambda: _creates(emu) == 1 + len(packs), "this process to buy A's packs")
    finally:
        emu.release()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    other = json.loads(out.split("RESULT ", 1)[1])
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    assert (res.status()["state"] == "done").all(), res.status()["error"].tolist()
    assert other["states"] == ["done"] * 12, other["errors"]
    assert sorted(set(other["requests"])) == packs
    assert _creates(emu) == 1 + len(packs)
