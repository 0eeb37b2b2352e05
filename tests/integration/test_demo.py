"""The ``xasync`` command end to end: the demo on its embedded emulator, and ``xasync status``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from xasync.cli import main

FIELD_LINE = re.compile(
    r"^(field-\d\d)\s+(\d{5})\s+(\S+)\s+(\w+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", re.MULTILINE
)


def _run_cli(*args: str, timeout: float = 120, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "xasync.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo-out"
    proc = _run_cli("demo", "--fields", "4", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "estimated cost: 40.00 PU for 4 requests" in proc.stdout  # printed before submitting

    rows = FIELD_LINE.findall(proc.stdout)
    assert [r[0] for r in rows] == ["field-01", "field-02", "field-03", "field-04"], proc.stdout
    assert {r[1] for r in rows} == {"32632", "32633"}, "fields should straddle two UTM zones"
    for _field, _epsg, request_id, state, estimated, cost, mean in rows:
        assert state == "done"
        assert float(estimated) == float(cost), (estimated, cost)  # estimate = charge
        assert re.fullmatch(r"[0-9a-f-]{36}", request_id), request_id
        assert float(cost) > 0
        assert -1.0 <= float(mean) <= 1.0
    assert len({r[6] for r in rows}) > 1, "different fields should have different NDVI"
    assert "4/4 fields done" in proc.stdout

    png = out / "ndvi-fields.png"
    assert f"figure: {png.resolve()}" in proc.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_demo_real_without_credentials_explains_and_sends_nothing(tmp_path):
    env = {k: "" for k in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "XASYNC_DEMO_DELIVERY")}
    proc = _run_cli("demo", "--real", "--fields", "2", "--out", str(tmp_path), env=env, timeout=60)
    assert proc.returncode == 1
    assert "ConfigError" in proc.stderr
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "XASYNC_DEMO_DELIVERY"):
        assert var in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing should be written"


def test_help_lists_the_commands_and_demo_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--fields", "--concurrency", "--out", "--real", "--no-progress"):
        assert option in text
    assert main([]) == 2
    text = capsys.readouterr().out
    for command in ("demo", "status", "emulator"):
        assert command in text
    with pytest.raises(SystemExit) as exc:  # delegated to python -m xasync.emulator
        main(["emulator", "--help"])
    assert exc.value.code == 0
    assert "--concurrency" in capsys.readouterr().out


def test_status_lists_what_was_delivered(emu, capsys, monkeypatch):
    import geopandas as gpd
    from shapely.geometry import box

    import xasync
    from xasync.demo import NDVI_EVALSCRIPT

    root = emu.create_bucket("status-cli")
    gdf = gpd.GeoDataFrame(
        {"name": ["a", "b"]},
        geometry=[box(11.95, 47.85, 11.953, 47.852), box(12.02, 47.86, 12.022, 47.862)],
        crs="EPSG:4326",
    ).set_index("name")
    results = gdf.xasync.process(
        NDVI_EVALSCRIPT,
        time=("2024-06-01", "2024-06-30"),
        resolution=10,
        crs="utm",
        delivery=f"{root}/ndvi",
        storage_options=emu.storage_options,
        client=xasync.Client.from_emulator(emu),
    ).wait(timeout=60, progress=False)
    expected = results.status()

    so = emu.storage_options
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", so["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", so["secret"])
    code = main(["status", f"{root}/ndvi", "--endpoint-url", emu.s3_endpoint_url])
    text = capsys.readouterr().out
    assert code == 0, text
    for label in ("a", "b"):
        rid = expected.loc[label, "request_id"]
        line = next(ln for ln in text.splitlines() if rid in ln)
        assert line.split()[:2] == [label, "done"]
        assert f"{expected.loc[label, 'cost_pu']:.3f}" in line
    assert "2 rows (done 2)" in text
    assert so["secret"] not in text


def test_status_of_an_empty_prefix_is_a_clear_error(emu, capsys, monkeypatch):
    root = emu.create_bucket("status-empty")
    so = emu.storage_options
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", so["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", so["secret"])
    code = main(["status", f"{root}/nothing", "--endpoint-url", emu.s3_endpoint_url])
    err = capsys.readouterr().err
    assert code == 1
    assert "no xasync delivery manifest" in err


def test_demo_in_process_leaves_no_thread_behind(tmp_path, capsys):
    import threading

    before = {t.ident for t in threading.enumerate()}
    assert main(["demo", "--fields", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "2/2 fields done" in capsys.readouterr().out
    import dask.threaded

    pool = dask.threaded.default_pool  # dask's process-wide worker pool, reused by design
    dask_threads = set(getattr(pool, "_threads", ()))
    deadline = time.monotonic() + 10
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t.ident not in before
            and t not in dask_threads
            and (not t.daemon or "xasync" in t.name)
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, [t.name for t in left]
