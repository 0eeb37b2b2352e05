"""The interpreter exits cleanly with calls in flight (the submitter's exit hook).

A child process (``exit_runner.py``) cancels a big call whose rows wait for slots, makes a small
call on the same account (it must finish: the cancel left the slots' lock free), leaves a third
call running and exits: its exit code is 0 and asyncio reports no "Task was destroyed but it is
pending!" (the loop thread's tasks are cancelled once and end before the loop closes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ._helpers import fresh_root

TESTS = Path(__file__).resolve().parents[1]


def test_exit_with_calls_in_flight_is_clean(emu):
    emu.configure(concurrency_limit=2)
    endpoints = {
        "base_url": emu.base_url,
        "token_url": emu.token_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "storage_options": emu.storage_options,
        "root": fresh_root(emu, "exit"),
    }
    env = {
        **os.environ,
        "XASYNC_EXIT_RUNNER": json.dumps(endpoints),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(  # it holds and releases the emulator's requests itself
        [sys.executable, str(TESTS / "reliability" / "exit_runner.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,  # against a hang only
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("exiting"), proc.stdout
    assert "Task was destroyed" not in proc.stderr, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert emu.stats["creates"] >= 2 + 3
