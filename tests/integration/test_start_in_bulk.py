"""A job's rows are decided at its start in one pass (``submitter/starting.py``): a job that
reaches the submitter already cancelled ends its new rows in one hold of the ledger, without a
task each, and still records the rows that were delivered before (nothing delivered is lost).
Counted, not timed. ``BACKGROUND_ROWS`` is lowered so that a few rows take the big-call path,
whose hand-over can be held until the test cancelled.
"""

from __future__ import annotations

import threading

import pytest

from xasync import callsubmit
from xasync.submitter.queueing import RowQueue

from ._shared import fields
from ._shared import process_ndvi as _process
from ._shared import until as _until

ROWS = 40
DELIVERED = 3


@pytest.fixture
def counted(monkeypatch):
    """Tasks the submitter spawns for rows, and notifications of the process's ledger."""
    from xasync.ledger import LEDGER

    counts = {"tasks": 0, "notified": 0}
    spawn = RowQueue.spawn

    def counted_spawn(self, url, coro):
        counts["tasks"] += 1
        return spawn(self, url, coro)

    notify = LEDGER.cond.notify_all

    def counted_notify():
        counts["notified"] += 1
        notify()

    monkeypatch.setattr(RowQueue, "spawn", counted_spawn)
    monkeypatch.setattr(LEDGER.cond, "notify_all", counted_notify)
    return counts


def test_a_job_cancelled_before_it_started_ends_in_bulk_and_keeps_deliveries(
    e2e, monkeypatch, counted
):
    emu, client, root = e2e
    emu.configure(concurrency_limit=4, processing_seconds=0.2)
    gdf = fields(ROWS)
    url = f"{root}/bulk-start"
    _process(gdf.iloc[:DELIVERED], emu, client, url).wait(timeout=120, progress=False)
    assert emu.stats["creates"] == DELIVERED

    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 2)
    real, cancelled = callsubmit.write_manifest_text, threading.Event()

    def held(*args, **kwargs):  # the hand-over waits until the test cancelled
        assert cancelled.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(callsubmit, "write_manifest_text", held)
    counted.update(tasks=0, notified=0)
    results = _process(gdf, emu, client, url)
    results.cancel()
    cancelled.set()
    results.wait(timeout=120, progress=False)

    status = results.status()
    assert emu.stats["creates"] == DELIVERED  # nothing more was bought
    assert (status["state"].iloc[:DELIVERED] == "done").all(), status
    assert (status["state"].iloc[DELIVERED:] == "failed").all(), status
    assert status["error"].iloc[DELIVERED:].str.contains("nothing was bought").all()
    # no task per row: every row ended at the start, in a few holds of the ledger
    assert counted["tasks"] == 0
    assert counted["notified"] < ROWS // 4, counted
    # the delivered rows read as before
    assert results[0].ndvi.notnull().any()


def test_a_row_another_job_follows_is_attached_to_not_ended(e2e, monkeypatch):
    """The rows of a cancelled job that another running job follows wait for its outcome."""
    emu, client, root = e2e
    emu.configure(concurrency_limit=4, processing_seconds=0.2)
    gdf = fields(6, lon0=15.0)
    url = f"{root}/bulk-attach"
    with emu.hold():
        first = _process(gdf.iloc[:2], emu, client, url)
        _until(lambda: (first.status()["state"] == "running").all(), "the first job to run")
        monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 2)
        real, cancelled = callsubmit.write_manifest_text, threading.Event()

        def held(*args, **kwargs):
            assert cancelled.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(callsubmit, "write_manifest_text", held)
        second = _process(gdf, emu, client, url)
        second.cancel()
        cancelled.set()
        _until(lambda: (second.status()["state"].iloc[2:] == "failed").all(), "the decisions")
        assert (second.status()["state"].iloc[:2] != "failed").all(), second.status()
    first.wait(timeout=120, progress=False)
    second.wait(timeout=120, progress=False)
    assert (second.status()["state"].iloc[:2] == "done").all(), second.status()
    assert emu.stats["creates"] == 2
