"""Results: row selection by position, label and slice; status and costs read from the ledger;
the Datasets' attrs are never rewritten (neighbouring rows combine)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xasync.jobs import Job, RowStatus
from xasync.ledger import Entry, Ledger, Stage, utcnow
from xasync.results import STATUS_COLUMNS, Results


def tile(i: int) -> xr.Dataset:
    """Row i's 4 x 4 px tile; tiles of consecutive rows touch along x (a 1 x n mosaic)."""
    x = 10.0 * i + np.arange(4) * 2.5 + 1.25
    y = 100.0 - (np.arange(4) * 2.5 + 1.25)
    values = np.full((4, 4), float(i))
    ds = xr.Dataset({"ndvi": (("y", "x"), values)}, coords={"x": x, "y": y})
    ds.attrs.update({"collection": "sentinel-2-l2a", "time_from": "2024-06-01"})
    return ds


def make(index: pd.Index, urls: list[str] | None = None) -> tuple[Results, Job, Ledger]:
    n = len(index)
    urls = urls or [f"s3://b/p/{i:024d}" for i in range(n)]
    ledger = Ledger()
    job = Job(
        [RowStatus(f"t{i}", url, label) for i, (url, label) in enumerate(zip(urls, index))],
        ledger=ledger,
    )
    built: list[int] = []

    def build(i: int) -> xr.Dataset:
        built.append(i)
        return tile(i)

    results = Results.deferred(n, build, index, job, delivery="s3://b/p")
    results.built = built  # type: ignore[attr-defined]
    return results, job, ledger


def value(ds: xr.Dataset) -> int:
    return int(ds["ndvi"].values[0, 0])


# -- #16 finding 7: labels of any type ------------------------------------------------------------
def test_string_labels_select_rows_and_ints_stay_positions():
    results, _, _ = make(pd.Index(["a", "b", "c"]))
    assert value(results["b"]) == 1  # was: TypeError '<' not supported between 'str' and 'int'
    assert value(results[0]) == 0 and value(results[-1]) == 2
    assert value(results[np.int64(1)]) == 1
    assert [value(d) for d in results[1:]] == [1, 2]
    assert [value(d) for d in results["a":"b"]] == [0, 1]  # labels: both ends included
    assert results.positions("c") == 2
    with pytest.raises(KeyError, match="no row labelled 'z'"):
        results["z"]
    with pytest.raises(IndexError):
        results[3]
    with pytest.raises(TypeError, match="position"):
        results[["a"]]
    assert results.built == [1, 0, 2]  # only what was selected was assembled, once each


def test_timestamp_integer_and_multiindex_labels():
    days = pd.DatetimeIndex(["2024-06-14", "2024-06-15", "2024-07-01"])
    results, _, _ = make(days)
    assert value(results[pd.Timestamp("2024-06-15")]) == 1
    assert [value(d) for d in results["2024-06"]] == [0, 1]  # a partial date: several rows
    with pytest.raises(KeyError):
        results[pd.Timestamp("2030-01-01")]

    results, _, _ = make(pd.Index([10, 20, 30]))
    assert value(results[1]) == 1  # an int is a position even when labels are ints...
    assert results.positions(20) == 1  # ...labels go through positions() or .datasets.loc
    assert value(results.datasets.loc[30]) == 2

    multi = pd.MultiIndex.from_tuples([("x", 1), ("x", 2), ("y", 1)])
    results, _, _ = make(multi)
    assert value(results[("x", 2)]) == 1
    assert [value(d) for d in results["x"]] == [0, 1]
    with pytest.raises(KeyError):
        results[("y", 9)]


def test_duplicate_labels_give_every_matching_row():
    results, _, _ = make(pd.Index(["a", "b", "a"]))
    assert [value(d) for d in results["a"]] == [0, 2]


# -- #16 finding 10: status() does not rewrite attrs; neighbouring rows combine ----------------------
def test_status_and_wait_leave_attrs_alone_so_rows_combine(monkeypatch):
    results, job, ledger = make(pd.Index(["a", "b", "c"]))
    before = [dict(ds.attrs) for ds in results]
    for i, url in enumerate(job.urls):
        ledger.record(
            url,
            Entry(
                url,
                Stage.DONE,
                request_id=f"req-{i}",
                cost=10.0 + i,
                bought_by=job.id,
                submitted=utcnow(),
                finished=utcnow(),
            ),
        )
    results.wait(timeout=5, progress=False)
    status = results.status()
    assert list(status["request_id"]) == ["req-0", "req-1", "req-2"]
    assert [dict(ds.attrs) for ds in results] == before
    mosaic = xr.combine_by_coords(list(results))
    assert mosaic.sizes == {"x": 12, "y": 4}
    assert np.array_equal(mosaic["ndvi"].values[0], np.repeat([0.0, 1.0, 2.0], 4))


# -- #13 item 3: honest costs ------------------------------------------------------------------------
def test_a_shared_request_is_counted_once_and_split_among_its_rows():
    shared, alone = "s3://b/p/" + "a" * 24, "s3://b/p/" + "b" * 24
    results, job, ledger = make(pd.Index(["n1", "n2", "s"]), urls=[shared, shared, alone])
    assert list(results.status().columns) == STATUS_COLUMNS
    assert results.status()["state"].eq("queued").all() and results.cost == 0.0
    ledger.record(
        shared, Entry(shared, Stage.DONE, request_id="r-shared", cost=10.0, bought_by=job.id)
    )
    ledger.record(alone, Entry(alone, Stage.DONE, request_id="r-alone", cost=6.0, bought_by=job.id))
    status = results.status()
    assert list(status.index) == ["n1", "n2", "s"]
    assert list(status["cost_pu"]) == [5.0, 5.0, 6.0]
    assert status["cost_pu"].sum() == results.cost == 16.0  # charged: 10 + 6, not 26
    assert list(status["requests"]) == [shared, shared, alone]
    assert list(status["request_id"]) == ["r-shared", "r-shared", "r-alone"]
    assert status["state"].eq("done").all() and not status["reused"].any()


def test_failed_rows_carry_their_error_and_cost_nothing_when_nothing_was_bought():
    results, job, ledger = make(pd.Index(["a", "b"]))
    url_a, url_b = job.urls
    ledger.record(url_a, Entry(url_a, Stage.FAILED, error="create refused: HTTP 400"))
    ledger.record(url_b, Entry(url_b, Stage.RUNNING, request_id="r-b", bought_by=job.id))
    status = results.status()
    assert status.loc["a", "state"] == "failed" and "HTTP 400" in status.loc["a", "error"]
    assert status.loc["b", "state"] == "running" and np.isnan(status.loc["b", "cost_pu"])
    assert results.cost == 0.0 and not results.done
    assert "failed 1" in repr(results) and "running 1" in repr(results)


def test_estimates_show_beside_the_charge():
    shared = "s3://b/p/" + "a" * 24
    index = pd.Index(["n1", "n2"])
    ledger = Ledger()
    job = Job([RowStatus("t0", shared, "n1"), RowStatus("t1", shared, "n2")], ledger=ledger)
    results = Results.deferred(2, tile, index, job, delivery="s3://b/p", estimated_pu=[5.0, 5.0])
    ledger.record(shared, Entry(shared, Stage.DONE, request_id="r", cost=10.0, bought_by=job.id))
    status = results.status()
    assert list(status["estimated_pu"]) == [5.0, 5.0]
    assert status["estimated_pu"].sum() == status["cost_pu"].sum() == 10.0
    assert make(index)[0].status()["estimated_pu"].isna().all()  # none given
    with pytest.raises(ValueError, match="one entry per row"):
        Results.deferred(2, tile, index, job, delivery="s3://b/p", estimated_pu=[1.0])


def test_iterating_builds_in_batches_in_order_and_restores_the_collector(monkeypatch):
    import gc

    from xasync import results as results_module

    monkeypatch.setattr(results_module, "BUILD_BATCH", 4)
    res, _, _ = make(pd.RangeIndex(10))
    first = res[6]
    seen_enabled = []
    build = res._build

    def watching(i: int) -> xr.Dataset:
        seen_enabled.append(gc.isenabled())
        return build(i)

    res._build = watching
    got = list(res)
    assert [value(ds) for ds in got] == list(range(10))
    assert got[6] is first and res.built.count(6) == 1  # built once, then kept
    assert seen_enabled and not any(seen_enabled)  # paused while building
    assert gc.isenabled()
    assert list(res.datasets.index) == list(range(10))


def test_a_built_batch_goes_to_the_oldest_generation_in_one_pass(monkeypatch):
    """After a batch the collector runs once over the young generations (the batch's objects
    all survive); with the collector turned off by the user it does not run at all."""
    import gc

    from xasync import results as results_module

    monkeypatch.setattr(results_module, "BUILD_BATCH", 4)
    monkeypatch.setattr(results_module, "COLLECT_AFTER", 4)
    passes: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        res, _, _ = make(pd.RangeIndex(8))
        passes.clear()
        got = list(res)
        assert passes.count(1) >= 2  # one per batch of 4 (more if the test allocates a lot)
        assert all(any(o is ds for o in gc.get_objects(generation=2)) for ds in got[:4])
        gc.disable()
        try:
            res2, _, _ = make(pd.RangeIndex(8))
            passes.clear()
            assert len(list(res2)) == 8
            assert passes == [] and not gc.isenabled()
        finally:
            gc.enable()
        monkeypatch.setattr(results_module, "COLLECT_AFTER", 5)  # small batches: no pass
        res3, _, _ = make(pd.RangeIndex(8))
        passes.clear()
        assert len(list(res3)) == 8
        assert 1 not in passes and 2 not in passes
    finally:
        gc.callbacks.remove(watch)


def test_a_failing_row_raises_at_its_turn_when_iterating(monkeypatch):
    from xasync import results as results_module

    monkeypatch.setattr(results_module, "BUILD_BATCH", 4)
    res, _, _ = make(pd.RangeIndex(6))
    build = res._build

    def failing(i: int) -> xr.Dataset:
        if i == 2:
            raise RuntimeError("row 2 cannot be built")
        return build(i)

    res._build = failing
    it = iter(res)
    assert [value(next(it)) for _ in range(2)] == [0, 1]
    with pytest.raises(RuntimeError, match="row 2"):
        next(it)
