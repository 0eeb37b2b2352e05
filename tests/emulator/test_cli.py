"""``python -m xasync.emulator`` runs in the foreground, prints its endpoints, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("flags", "clouds"), [([], "on"), (["--no-clouds"], "off")])
def test_cli_serves_and_stops_on_sigterm(flags, clouds):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xasync.emulator",
            "--processing-seconds",
            "0.1",
            "--bucket",
            "cli-bucket",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        values = {}
        t0 = time.monotonic()
        while "s3_endpoint_url" not in values or "bucket" not in values:
            # a guard against hangs (startup imports the stack), not a measurement
            assert time.monotonic() - t0 < 120, proc.stderr.read() if proc.poll() else "slow"
            line = proc.stdout.readline()
            if ":" in line and not line.startswith("Press"):
                key, _, value = line.partition(":")
                values[key.strip()] = value.strip()
        assert values["base_url"].startswith("http://127.0.0.1:")
        # the flag reaches the settings the scene generator reads (tests/emulator/test_clouds.py
        # checks that clouds=False gives clear pixels)
        assert values["clouds"] == clouds
        token = httpx.post(
            values["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": values["client_id"],
                "client_secret": values["client_secret"],
            },
            timeout=10,
        )
        assert token.status_code == 200
        r = httpx.get(f"{values['s3_endpoint_url']}/cli-bucket", timeout=10)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "emulator stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
