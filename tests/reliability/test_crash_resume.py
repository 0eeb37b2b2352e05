"""Crash and resume (issue 6, test 6): a process SIGKILLed mid-run loses nothing and the rerun
buys nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ._helpers import assert_no_duplicate_creates, fresh_root

pytestmark = pytest.mark.faults

RUNNER = Path(__file__).with_name("crash_runner.py")


def start_runner(emu, delivery: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        XASYNC_REL_BASE_URL=emu.base_url,
        XASYNC_REL_TOKEN_URL=emu.token_url,
        XASYNC_REL_CLIENT_ID=emu.client_id,
        XASYNC_REL_CLIENT_SECRET=emu.client_secret,
        XASYNC_REL_CONCURRENCY=str(emu.concurrency_limit),
        XASYNC_REL_STORAGE_OPTIONS=json.dumps(emu.storage_options),
        XASYNC_REL_DELIVERY=delivery,
        XASYNC_REL_CLAIM_TIMEOUT="5",  # the killed run's claim is stale after 5 s
    )
    return subprocess.Popen(
        [sys.executable, str(RUNNER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kill_after", [1, 6], ids=["early", "mid"])
def test_sigkill_mid_run_then_rerun_buys_nothing_twice(emu, kill_after):
    emu.configure(concurrency_limit=4, processing_seconds=1.0)
    delivery = fresh_root(emu, "crash") + "/run"

    first = start_runner(emu, delivery)
    try:
        deadline = time.monotonic() + 60
        while emu.stats["creates"] < kill_after:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never created anything"
            time.sleep(0.02)
        # from here no request finishes, so no slot frees up: the first run cannot buy more
        # than the 4 it may have running, however late the kill lands on a busy machine
        emu.hold()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    bought_before = emu.stats["creates"]
    emu.release()  # the held requests finish; the second run finds them delivered or running
    assert first.returncode == -signal.SIGKILL
    assert kill_after <= bought_before < 20, bought_before  # killed mid-run

    second = start_runner(emu, delivery)
    out, err = second.communicate(timeout=150)
    assert second.returncode == 0, err[-3000:]
    result = json.loads(out.split("RESULT ", 1)[1])
    stats = emu.stats
    print(f"\ncrash/resume: creates before kill={bought_before}, after rerun={stats['creates']}")
    assert result["states"] == ["done"] * 20
    assert_no_duplicate_creates(stats, 20)  # total accepted creates == 20, one per row
    # what the first run had bought was reused or attached to, not bought again
    assert len(set(result["request_ids"])) == 20
    assert result["mean_last"] != 0.0
