"""The live check is opt-in: deselected by default, skipped with a reason without an account or
in CI. (This module itself runs offline in every suite.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIVE = "tests/live/test_live_service.py"


def _pytest(*args: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SH_", "XASYNC_LIVE", "AWS_")) and k != "CI"
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args, LIVE],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 5), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_plain_pytest_deselects_the_live_check():
    assert "6 deselected" in _pytest()


def test_without_an_account_it_skips_naming_what_is_missing():
    out = _pytest("-m", "live", SH_CLIENT_ID="someone")
    assert "6 skipped" in out
    assert "SH_CLIENT_SECRET, XASYNC_LIVE_BUCKET" in out
    assert "SH_CLIENT_ID," not in out  # it is set


@pytest.mark.parametrize("ci", ["true", "1"])
def test_never_in_ci_even_with_an_account(ci):
    account = {
        "SH_CLIENT_ID": "id",
        "SH_CLIENT_SECRET": "secret",
        "XASYNC_LIVE_BUCKET": "s3://b",
        "XASYNC_LIVE_S3_KEY": "k",
        "XASYNC_LIVE_S3_SECRET": "s",
    }
    out = _pytest("-m", "live", CI=ci, **account)
    assert "6 skipped" in out and "never runs in CI" in out
