"""xasync's pytest plugin, as a user gets it: a test file in an empty folder, run by pytest.

The user's folder has no conftest and no configuration: the plugin comes from the installed
package (its ``pytest11`` entry point; ``-p xasync.testing`` only when this checkout's metadata
predates the entry point), HOME points at an empty folder and no SH_/AWS_ variable is set.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xasync.testing

ROOT = Path(__file__).resolve().parents[1]

USER_TESTS = '''
import geopandas as gpd
import pytest
from shapely.geometry import box

import xasync

EVALSCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) {
  const sum = s.B08 + s.B04;
  return [sum === 0 ? 0 : (s.B08 - s.B04) / sum];
}
"""
BUCKETS = []


def fields():
    return gpd.GeoDataFrame(
        {"name": ["north"]}, geometry=[box(11.95, 47.85, 11.952, 47.852)], crs="EPSG:4326"
    ).set_index("name")


def run(client, bucket, storage_options):
    results = fields().xasync.process(
        EVALSCRIPT, data="sentinel-2-l2a", time=("2024-06-01", "2024-06-30"), resolution=10,
        crs="utm", delivery=f"{bucket}/ndvi", storage_options=storage_options, client=client,
    )
    results.wait(timeout=120, progress=False)
    return results


def test_pipeline(xasync_client, xasync_bucket, xasync_storage_options, xasync_emulator):
    assert xasync_bucket.startswith("s3://")
    BUCKETS.append(xasync_bucket)
    results = run(xasync_client, xasync_bucket, xasync_storage_options)
    assert list(results.status()["state"]) == ["done"]
    ndvi = results[0].ndvi.compute()
    assert ndvi.shape[0] > 1 and ndvi.shape[1] > 1
    assert -1.0 <= float(ndvi.min()) <= float(ndvi.max()) <= 1.0
    assert xasync_emulator.stats["succeeded"] == 1


def test_each_test_starts_clean(xasync_emulator, xasync_bucket, xasync_storage_options):
    BUCKETS.append(xasync_bucket)
    assert BUCKETS[0] != BUCKETS[1]  # a fresh bucket per test
    import s3fs

    fs = s3fs.S3FileSystem(**xasync_storage_options)
    assert fs.ls(xasync_bucket) == []  # and empty
    assert xasync_emulator.stats["creates"] == 0  # the previous test's request is forgotten


@pytest.mark.xasync_emulator(concurrency_limit=1, processing_seconds=0.05)
def test_marker_sets_knobs(xasync_emulator):
    assert (xasync_emulator.concurrency_limit, xasync_emulator.processing_seconds) == (1, 0.05)


def test_knobs_come_back(xasync_emulator):
    assert (xasync_emulator.concurrency_limit, xasync_emulator.processing_seconds) == (4, 0.2)


def test_faults(xasync_faults, xasync_client, xasync_bucket, xasync_storage_options):
    xasync_faults(failure_rate=1.0)
    results = run(xasync_client, xasync_bucket, xasync_storage_options)
    status = results.status()
    assert list(status["state"]) == ["failed"]
    assert status["error"].iloc[0]


def test_faults_are_off_again(xasync_emulator):
    assert xasync_emulator.faults.failure_rate == 0.0
'''

UNRELATED_TEST = """
import sys


def test_nothing_heavy_was_imported():
    assert "xasync.testing" in sys.modules  # the plugin is loaded...
    heavy = ["moto", "flask", "boto3", "s3fs", "xasync.emulator", "xasync.client"]
    assert [m for m in heavy if m in sys.modules] == []  # ...but costs nothing unused
"""


def _entry_point_installed() -> bool:
    return any(
        ep.name == "xasync" and ep.value == "xasync.testing"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


def _run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``folder`` with an environment that configures nothing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SH_", "AWS_", "XASYNC_", "PYTEST_")) and k != "XDG_CONFIG_HOME"
    }
    env["HOME"] = str(folder / "home")
    (folder / "home").mkdir(exist_ok=True)
    # The package must come from this checkout (PYTHONPATH when the venv's install is another).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    plugin = [] if _entry_point_installed() else ["-p", "xasync.testing"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *plugin, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_users_test_file_passes_with_nothing_configured(tmp_path):
    (tmp_path / "test_my_pipeline.py").write_text(textwrap.dedent(USER_TESTS))
    proc = _run_pytest(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "6 passed" in out, out[-4000:]


def test_the_plugin_costs_nothing_to_a_suite_that_does_not_use_it(tmp_path):
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_TEST)
    proc = _run_pytest(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "1 passed" in out, out[-4000:]


def test_this_suite_runs_on_the_plugin(emulator, emu, xasync_emulator_session, xasync_emulator):
    """The historic fixture names are the plugin's fixtures (one emulator per session)."""
    assert emulator is xasync_emulator_session
    assert emu is xasync_emulator is emulator
    assert emulator.base_url.startswith("http://127.0.0.1:")


def test_marker_rejects_unknown_knobs(emu):
    with pytest.raises(pytest.UsageError, match="xasync_emulator"):
        xasync.testing.apply_marker(emu, {"concurrency": 3})


def test_entry_point_is_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"xasync": "xasync.testing"}
