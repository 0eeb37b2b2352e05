"""Issue 16, findings 1 and 2: transient token/API faults while following, and a full outage.

1. A token endpoint (and API) failing while a paid request is followed must not mark it failed:
   S3 is asked instead, and the row ends done.
2. The API and S3 going away together: ``wait()`` raises a typed TransportError, every row ends
   in a final state, and nothing is bought after that, even once both are back.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import xasync
from xasync.emulator import Faults

from ._helpers import NDVI, RES, TIME, fields, fresh_root
from ._proxy import Cutoff

pytestmark = pytest.mark.faults


def _until(predicate, timeout: float = 60.0) -> None:
    """Wait for a condition (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_token_and_status_failures_while_following_do_not_fail_a_paid_row(emu):
    emu.configure(concurrency_limit=4, processing_seconds=2.0, token_lifetime=1)
    client = xasync.Client.from_emulator(emu, max_retries=1, backoff_base=0.05)
    root = fresh_root(emu, "tok")
    try:
        results = fields(3, lat0=41.0).xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/t",
            storage_options=emu.storage_options,
            client=client,
        )
        _until(lambda: emu.stats["creates"] == 3)
        # from now on every token request and every status call fails (5xx)
        emu.configure(faults=Faults(server_error=1.0, apply_to_token=True, seed=4))
        results.wait(timeout=120, progress=False)
        failing = emu.stats
    finally:
        emu.configure(faults=Faults())
        client.close()
    status = results.status()
    assert failing["server_errors"] > 0  # the faults were met while following
    assert (status["state"] == "done").all(), status[["state", "error"]]
    assert emu.stats["creates"] == 3
    assert np.isfinite(results[2]["ndvi"].values).any()


def test_an_outage_of_api_and_s3_ends_every_row_and_buys_nothing_more(emu):
    emu.configure(concurrency_limit=1, processing_seconds=1.5)
    cut = Cutoff(emu, "outage")
    try:
        results = cut.process(fields(4, lat0=40.0))
        # one runs (its create answered), three wait for the slot
        _until(lambda: [r.state.value for r in results.job.snapshot()].count("running") == 1)
        cut.down()
        with pytest.raises(xasync.TransportError):
            results.wait(timeout=180, progress=False)
        status = results.status()
        bought = emu.stats["creates"]
        # every row is final at once, with a reason
        assert status["state"].isin(["done", "failed"]).all(), status[["state", "error"]]
        not_bought = status[status["request_id"].isna()]
        assert len(not_bought) == 3 and bought == 1
        assert status["error"].str.contains("lost contact|S3").all()
        assert not_bought["error"].str.contains("nothing was bought").all()
        # both come back: the stopped job buys nothing more (a new call is the witness that
        # the submitter loop ran on: it buys its own one row)
        cut.up()
        cut.process(fields(1, lat0=39.0), "after", options=None).wait(timeout=120, progress=False)
        assert emu.stats["creates"] == bought + 1
        # computing a row that was never bought raises a typed error, not a botocore one
        with pytest.raises(xasync.XasyncError):
            results[3]["ndvi"].compute()
    finally:
        cut.close()


def test_an_outage_on_the_last_unfinished_row_still_raises(emu, monkeypatch):
    """Every other row is done when the last one loses contact: its failure must not let
    ``wait`` return before the job's TransportError is recorded (they reach waiters together).
    The row's failure is slowed down so that a waiter would have the time to look between."""
    from xasync.submitter.run import JobRun

    fail = JobRun._fail

    def slow_fail(self, url, message):
        fail(self, url, message)
        time.sleep(0.5)  # the submitter's thread lets the user's thread run here

    monkeypatch.setattr(JobRun, "_fail", slow_fail)
    emu.configure(concurrency_limit=2, processing_seconds=0.2)
    cut = Cutoff(emu, "outage-last", concurrency=2)  # both rows run at once
    try:
        with emu.hold():
            results = cut.process(fields(2, lat0=38.0))
            _until(lambda: results.status()["request_id"].notna().all(), timeout=120)
            first = results.status()["request_id"].iloc[0]
            emu.release(first)
            _until(lambda: results.status()["state"].iloc[0] == "done", timeout=120)
            cut.down()
            with pytest.raises(xasync.TransportError):
                results.wait(timeout=180, progress=False)
        status = results.status()
        assert list(status["state"]) == ["done", "failed"]
        assert "lost contact" in status["error"].iloc[1]
        assert emu.stats["creates"] == 2
    finally:
        cut.close()
