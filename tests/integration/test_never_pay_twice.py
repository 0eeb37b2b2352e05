"""Never pay twice (issue 13, items 2-3): one create per distinct request, however it is asked for.

Counted with the emulator's create counter: the same call twice in quick succession (one thread),
from two threads, from two processes (conditional-write claims in S3), and honest costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import s3fs

import xasync
from xasync._contract import REQUEST_COPY_COST_FIELD, REQUEST_COPY_FILE
from xasync.request import build_specs
from xasync.submitter.claim import claim_path

from ._shared import NDVI_NO_MASK, TIME, fields

NDVI = NDVI_NO_MASK
RUNNER = Path(__file__).parents[1] / "reliability" / "crash_runner.py"


@pytest.fixture
def setup(e2e):
    e2e[0].configure(concurrency_limit=4, processing_seconds=0.6)
    return e2e


def _process(gdf, client, emu, delivery):
    return gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
    )


def test_the_same_call_twice_in_a_row_buys_once(setup):
    emu, client, root = setup
    gdf = fields(6)
    first = _process(gdf, client, emu, f"{root}/twice")
    second = _process(gdf, client, emu, f"{root}/twice")  # before the first created anything
    first.wait(timeout=120, progress=False)
    second.wait(timeout=120, progress=False)
    stats = emu.stats
    assert stats["creates"] == 6, stats["creates_by_prefix"]
    assert (first.status()["state"] == "done").all() and (second.status()["state"] == "done").all()
    # what was charged, once: one call bought, the other attached to its requests (which one
    # decides first depends on which S3 listing answers first)
    payer, rider = (first, second) if first.cost > 0 else (second, first)
    assert payer.cost == pytest.approx(payer.status()["cost_pu"].sum()) and payer.cost > 0
    assert rider.cost == 0.0 and rider.status()["reused"].all()
    assert list(first.status()["request_id"]) == list(second.status()["request_id"])
    assert float(second[5]["ndvi"].mean().compute()) == float(first[5]["ndvi"].mean().compute())


def test_two_threads_buy_once(setup):
    emu, client, root = setup
    gdf = fields(6)
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def work(i: int) -> None:
        barrier.wait(30)
        results[i] = _process(gdf, client, emu, f"{root}/threads").wait(120, progress=False)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert all(r is not None for r in results)
    assert emu.stats["creates"] == 6, emu.stats["creates_by_prefix"]
    costs = sorted(r.cost for r in results)
    assert costs[0] == 0.0 and costs[1] > 0  # one call paid, the other attached


def test_two_processes_buy_once(setup, tmp_path):
    emu, _client, root = setup
    go = tmp_path / "go"
    env = dict(os.environ)
    env.update(
        XASYNC_REL_BASE_URL=emu.base_url,
        XASYNC_REL_TOKEN_URL=emu.token_url,
        XASYNC_REL_CLIENT_ID=emu.client_id,
        XASYNC_REL_CLIENT_SECRET=emu.client_secret,
        XASYNC_REL_CONCURRENCY="4",
        XASYNC_REL_STORAGE_OPTIONS=json.dumps(emu.storage_options),
        XASYNC_REL_DELIVERY=f"{root}/procs",
        XASYNC_REL_ROWS="8",
        XASYNC_REL_GO_FILE=str(go),
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
    go.touch()  # both start their call now (each waits for this file)
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        outs.append(json.loads(out.split("RESULT ", 1)[1]))
    assert emu.stats["creates"] == 8, emu.stats["creates_by_prefix"]
    for out in outs:
        assert out["states"] == ["done"] * 8
    assert outs[0]["request_ids"] == outs[1]["request_ids"]
    # honest costs: together the two calls report what the 8 requests were charged, once
    fs = s3fs.S3FileSystem(**emu.storage_options)
    copies = fs.glob(f"{root}/procs/*/*/{REQUEST_COPY_FILE}")
    assert len(copies) == 8
    charged = sum(json.loads(fs.cat_file(p))[REQUEST_COPY_COST_FIELD] for p in copies)
    assert sum(o["cost"] for o in outs) == pytest.approx(charged)


def test_a_claim_left_by_someone_else_is_followed_not_bought_again(setup):
    """A claim without a request folder (its writer is creating) makes us wait for its request."""
    emu, client, root = setup
    gdf = fields(1)
    delivery = f"{root}/claimed"
    probe_only = _process(gdf, client, emu, f"{root}/probe-only").wait(60, progress=False)
    url = probe_only.job.urls[0].replace(f"{root}/probe-only", delivery)
    fs = s3fs.S3FileSystem(**emu.storage_options)
    fs.pipe_file(claim_path(url, 0), b'{"owner": "someone-else"}')
    before = emu.stats["creates"]
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        options=xasync.SubmitOptions(ambiguous_grace=0.05),
    )
    # the other writer creates its request: we must follow it, not buy our own
    other = xasync.Client.from_emulator(emu)
    body = None
    try:
        spec = build_specs(gdf, NDVI, time=TIME, resolution=0.0002, delivery=delivery)[0]
        assert spec.row_url == url
        body = spec.body(
            {
                "accessKey": emu.storage_options["key"],
                "secretAccessKey": emu.storage_options["secret"],
            }
        )
        other.api.create(body)
    finally:
        other.close()
    results.wait(timeout=120, progress=False)
    assert emu.stats["creates"] - before == 1  # the other's request only
    assert results.status()["state"].tolist() == ["done"]
    assert results.cost == 0.0  # bought by someone else
