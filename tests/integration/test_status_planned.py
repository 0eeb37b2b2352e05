"""What was bought for tiled and packed rows, seen again: ``xasync status`` and ``open_delivery``.

Against the emulator: requests are held RUNNING with ``emu.hold()`` and released one by one, so
partial states are reached by events, never by timing. What ``status`` and ``open_delivery``
report is compared with what the ``process`` call that bought the rows reports
(``Results.status()``: its request ids, states and charged costs).
"""

from __future__ import annotations

import json
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import box

import xasync
from xasync.cli import delivery_status, main
from xasync.emulator import Faults

from ._packs import pack_fields as _fields

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""
TIME = ("2024-06-01", "2024-06-30")
WAIT_S = 300


@pytest.fixture
def setup(emu, monkeypatch):
    emu.configure(concurrency_limit=8, processing_seconds=0.05)
    root = emu.create_bucket(f"status-plan-{np.random.default_rng().integers(1e9)}")
    so = emu.storage_options
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", so["key"])  # `xasync status` reads the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", so["secret"])
    return emu, xasync.Client.from_emulator(emu), root


def _county() -> gpd.GeoDataFrame:
    """One 700 x 500 px row at 10 m: 6 tiles with ``max_request_px=300``."""
    geom = shapely.Polygon(
        [(500000, 4000000), (507000, 4000600), (506200, 4005000), (500400, 4004100)]
    )
    return gpd.GeoDataFrame({"name": ["county"]}, geometry=[geom], crs=32633, index=["c1"])


def _process(gdf, setup, prefix, **kw):
    emu, client, root = setup
    kw.setdefault("resolution", 10)
    kw.setdefault("time", TIME)
    return gdf.xasync.process(
        NDVI,
        delivery=f"{root}/{prefix}",
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )


def _cli(setup, prefix, capsys) -> tuple[int, dict]:
    """``xasync status --json`` of ``prefix``: exit status and document."""
    emu, _, root = setup
    capsys.readouterr()
    code = main(["status", f"{root}/{prefix}", "--endpoint-url", emu.s3_endpoint_url, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _until(predicate, what: str, timeout: float = WAIT_S):
    """Poll ``predicate`` (a generous bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _ids(text) -> set[str]:
    return set(str(text).split()) if isinstance(text, str) else set()


def test_status_of_a_tiled_row_counts_its_tiles_while_they_run(setup, capsys):
    """One tile is held RUNNING while the others are released (the submitter's slots for the
    emulator's account may be fewer than 6: tiles are created as slots free up)."""
    emu, _, root = setup
    emu.hold()  # every request stays RUNNING until released
    res = _process(_county(), setup, "tiled", max_request_px=300)
    keep = _until(lambda: emu.waiting and emu.waiting[0], "a tile held")
    code, doc = _cli(setup, "tiled", capsys)
    (row,) = doc["rows"]
    assert (code, row["label"], row["state"]) == (0, "c1", "pending")
    assert row["bought"].startswith("6 tiles: ") and "pending" in row["bought"]
    assert keep in _ids(row["request_id"])
    assert row["cost_pu"] is None and doc["requests"] == 6

    def five_done():
        for rid in emu.waiting:
            if rid != keep:
                emu.release(rid)
        got = delivery_status(f"{root}/tiled", emu.storage_options)
        return got["bought"].iloc[0] == "6 tiles: 5 done, 1 pending"

    _until(five_done, "5 tiles delivered, one held")
    code, doc = _cli(setup, "tiled", capsys)
    (row,) = doc["rows"]
    assert (code, row["state"]) == (0, "pending")
    assert len(_ids(row["request_id"])) == 6 and row["cost_pu"] > 0  # the 5 delivered tiles
    emu.release()
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    expected = res.status().loc["c1"]
    code, doc = _cli(setup, "tiled", capsys)
    (row,) = doc["rows"]
    assert (code, row["state"], row["bought"]) == (0, "done", "6 tiles: 6 done")
    assert _ids(row["request_id"]) == _ids(expected["request_id"])
    assert keep in _ids(row["request_id"]) and len(_ids(row["request_id"])) == 6
    assert row["cost_pu"] == pytest.approx(expected["cost_pu"]) and row["cost_pu"] > 0
    assert doc["cost_pu"] == pytest.approx(res.cost)
    assert len(row["row_url"].split()) == 6 and row["row_url"] == expected["requests"]


def test_status_names_the_failed_tiles_of_a_row(setup, capsys):
    emu = setup[0]
    emu.configure(faults=Faults(failure_rate=0.5, seed=3))
    res = _process(_county(), setup, "faulty", max_request_px=300)
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    expected = res.status().loc["c1"]
    assert expected["state"] == "failed"
    failed = {part.split(":")[0] for part in expected["error"].split("; ")}
    assert failed and all(name.startswith("tile (") for name in failed)
    code, doc = _cli(setup, "faulty", capsys)
    (row,) = doc["rows"]
    assert (code, row["state"]) == (1, "failed")
    assert {part.split(":")[0] for part in row["error"].split("; ")} == failed
    done = 6 - len(failed)
    assert row["bought"] == f"6 tiles: {done} done, {len(failed)} failed"
    assert _ids(row["request_id"]) == _ids(expected["request_id"])
    assert row["cost_pu"] == pytest.approx(expected["cost_pu"])  # what the delivered tiles cost
    # the table names them too (cut to its width), and says the row failed
    assert main(["status", f"{setup[2]}/faulty", "--endpoint-url", emu.s3_endpoint_url]) == 1
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("c1 "))
    assert line.split()[1] == "failed" and "tile (" in line
    assert "1 rows (failed 1) from 6 requests" in text


def test_status_of_packed_rows_names_the_group_request_and_each_share(setup, capsys):
    res = _process(_fields(), setup, "packed", crs="utm", mask=True, pack=True, pack_max_px=400)
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    expected = res.status()
    assert (expected["state"] == "done").all()
    groups = expected["requests"].nunique()
    assert 2 <= groups <= 4  # the two clusters are farther apart than pack_max_px
    code, doc = _cli(setup, "packed", capsys)
    assert code == 0 and doc["requests"] == groups and doc["states"] == {"done": 12}
    rows = {r["label"]: r for r in doc["rows"]}
    assert set(rows) == set(expected.index)
    for label, want in expected.iterrows():
        row = rows[label]
        members = int((expected["requests"] == want["requests"]).sum())
        assert row["request_id"] == want["request_id"]
        assert row["row_url"] == want["requests"]
        assert row["bought"] == f"pack of {members} rows"
        assert row["cost_pu"] == pytest.approx(want["cost_pu"])
    assert doc["cost_pu"] == pytest.approx(res.cost)
    assert sum(r["cost_pu"] for r in doc["rows"]) == pytest.approx(res.cost)


def test_open_delivery_reports_tiled_and_packed_rows_as_they_were_bought(setup):
    emu, client, root = setup
    tiled = _process(_county(), setup, "again/tiled", max_request_px=300)
    packed = _process(
        _fields(), setup, "again/packed", crs="utm", mask=True, pack=True, pack_max_px=400
    )
    for first in (tiled, packed):
        assert first.wait(timeout=WAIT_S, progress=False) is not None
    bought = int(emu.stats["creates"])
    for prefix, first in (("again/tiled", tiled), ("again/packed", packed)):
        again = xasync.open_delivery(f"{root}/{prefix}", emu.storage_options, client=client)
        assert again.wait(timeout=WAIT_S, progress=False) is not None
        want, got = first.status(), again.status()
        assert list(got.index) == list(want.index)
        for col in ("state", "request_id", "requests"):
            assert list(got[col]) == list(want[col]), col
        np.testing.assert_allclose(got["cost_pu"], want["cost_pu"])
        assert again.cost == pytest.approx(first.cost)
    assert int(emu.stats["creates"]) == bought  # nothing bought again


def test_open_delivery_follows_running_tiles_and_names_a_failed_one(setup):
    emu, client, root = setup
    emu.configure(faults=Faults(failure_rate=0.5, seed=3))
    emu.hold()
    first = _process(_county(), setup, "follow", max_request_px=300)
    _until(lambda: emu.waiting, "a tile held")
    again = xasync.open_delivery(f"{root}/follow", emu.storage_options)  # S3 only
    assert again.status().loc["c1", "state"] not in ("done", "failed")
    emu.release()
    assert first.wait(timeout=WAIT_S, progress=False) is not None
    assert again.wait(timeout=WAIT_S, progress=False) is not None
    want, got = first.status().loc["c1"], again.status().loc["c1"]
    assert got["state"] == want["state"] == "failed"
    assert got["error"] == want["error"] and "tile (" in got["error"]
    assert got["cost_pu"] == pytest.approx(want["cost_pu"])  # charged for the delivered tiles
    assert _ids(got["request_id"]) == _ids(want["request_id"])
    assert len(_ids(got["request_id"])) == int(emu.stats["creates"]) == 6


def test_open_delivery_of_a_prefix_holding_tiles_and_a_time_series(setup, capsys):
    """Rows of a tiled call and of a time series under one prefix: each comes back as it was."""
    emu, client, root = setup
    field = gpd.GeoDataFrame(
        geometry=[box(13.0, 45.0, 13.0025, 45.0018)], crs=4326, index=["field"]
    )
    series = _process(
        field,
        setup,
        "mixed",
        time=("2024-05-01", "2024-06-30"),
        freq="MS",
        resolution=None,
        size=(10, 8),
    )
    tiled = _process(_county(), setup, "mixed", max_request_px=300)
    for first in (series, tiled):
        assert first.wait(timeout=WAIT_S, progress=False) is not None
    again = xasync.open_delivery(f"{root}/mixed", emu.storage_options, client=client)
    assert again.wait(timeout=WAIT_S, progress=False) is not None
    assert sorted(again.labels) == ["c1", "field"]  # manifests of one second: either order
    assert again["field"]["ndvi"].dims == ("time", "y", "x")
    assert list(again["field"].time.values) == list(series["field"].time.values)
    np.testing.assert_array_equal(again["field"]["ndvi"].values, series["field"]["ndvi"].values)
    np.testing.assert_array_equal(again["c1"]["ndvi"].values, tiled["c1"]["ndvi"].values)
    code, doc = _cli(setup, "mixed", capsys)
    assert code == 0 and doc["states"] == {"done": 2} and doc["requests"] == 7
    assert {r["label"]: r["bought"] for r in doc["rows"]} == {
        "field": "request",
        "c1": "6 tiles: 6 done",
    }
