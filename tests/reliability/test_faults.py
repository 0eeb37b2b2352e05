"""Fault matrix (issue 6, tests 1-5): the emulator misbehaves, the user sees the right outcome.

Every test asserts what was bought (``emu.stats``: creates per row prefix), the final state of
every row, and that the delivered data computes.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import s3fs

import xasync
from xasync.emulator import Faults

from ._helpers import (
    NDVI,
    RES,
    TIME,
    assert_no_duplicate_creates,
    fields,
    fresh_root,
    learning_client,
)

pytestmark = pytest.mark.faults


def run(emu, client, root, n, *, timeout=120, options=None, tag="x"):
    gdf = fields(n)
    results = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=RES,
        delivery=f"{root}/{tag}",
        storage_options=emu.storage_options,
        client=client,
        options=options,
    )
    results.wait(timeout=timeout, progress=False)
    return gdf, results


def error_json_by_prefix(emu, root: str) -> dict[str, str]:
    """The service's own record of failed requests: ``{row prefix: error.json message}``."""
    fs = s3fs.S3FileSystem(**emu.storage_options, use_listings_cache=False)
    found = {}
    for path in fs.glob(f"{root.removeprefix('s3://')}/**/error.json"):
        prefix = "s3://" + path.rsplit("/", 2)[0]
        found[prefix] = json.loads(fs.cat_file(path))["message"]
    return found


@pytest.mark.parametrize("extra_429", [0.0, 0.15], ids=["limit-only", "limit+random-429"])
def test_429_storm_learns_the_limit_and_buys_each_row_once(emu, extra_429):
    emu.configure(
        concurrency_limit=2,
        processing_seconds=0.2,
        faults=Faults(rate_limit=extra_429, retry_after_ms=100, seed=11),
    )
    client = learning_client(emu)
    assert client.config.concurrency is None  # it is not told K
    root = fresh_root(emu, "storm")
    try:
        _, results = run(emu, client, root, 50, timeout=150)
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    print(
        f"\n429 storm ({extra_429}): {dict((k, stats[k]) for k in ('create_calls', 'creates', 'rate_limited', 'status_calls', 'max_running'))}"
    )
    assert (status["state"] == "done").all(), status["state"].value_counts()
    assert_no_duplicate_creates(stats, 50)
    assert stats["max_running"] <= 2
    assert stats["rate_limited"] > 0  # the storm really happened
    # learning K: far fewer rejected creates than accepted ones (not one 429 per poll of a slot)
    create_429 = stats["create_calls"] - stats["creates"] - stats["server_errors"]
    assert create_429 < 50 + 50 * extra_429 * 4, stats
    assert float(results[49]["ndvi"].mean().compute()) != 0.0


def test_5xx_and_dropped_connections_buy_nothing_twice(emu):
    emu.configure(
        concurrency_limit=4,
        processing_seconds=0.2,
        faults=Faults(server_error=0.05, drop_connection=0.05, drop_after_accept=0.5, seed=26),
    )
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "drops")
    try:
        _, results = run(emu, client, root, 40, options=xasync.SubmitOptions(ambiguous_grace=0.5))
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    print(
        f"\n5xx/drops: {dict((k, stats[k]) for k in ('create_calls', 'creates', 'server_errors', 'dropped', 'dropped_after_accept', 'status_calls'))}"
    )
    assert stats["server_errors"] > 0 and stats["dropped"] > 0  # both faults were injected
    assert (status["state"] == "done").all(), status[status["state"] != "done"]
    assert_no_duplicate_creates(stats, 40)
    # each row's dataset carries the request that was really bought for it
    assert status["request_id"].notna().all() and status["request_id"].is_unique


def test_dropped_after_accept_is_attached_not_rebought(emu):
    # Many drops after acceptance: the client must find the accepted request in S3.
    emu.configure(
        concurrency_limit=4,
        processing_seconds=0.2,
        faults=Faults(drop_connection=0.3, drop_after_accept=1.0, seed=5),
    )
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "accept")
    try:
        _, results = run(emu, client, root, 12, options=xasync.SubmitOptions(ambiguous_grace=0.5))
    finally:
        client.close()
    stats = emu.stats
    print(
        f"\ndrop-after-accept: dropped_after_accept={stats['dropped_after_accept']} creates={stats['creates']}"
    )
    assert stats["dropped_after_accept"] > 0
    assert (results.status()["state"] == "done").all()
    assert_no_duplicate_creates(stats, 12)


def test_short_token_lifetime_never_reaches_the_user(emu):
    emu.configure(concurrency_limit=2, processing_seconds=0.6, token_lifetime=2)
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "token")
    try:
        gdf, results = run(emu, client, root, 16)
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    print(
        f"\ntoken: token_calls={stats['token_calls']} unauthorized={stats['unauthorized']} creates={stats['creates']}"
    )
    assert (status["state"] == "done").all(), status[["state", "error"]]
    assert not status["error"].fillna("").str.contains("401|nauthori|token").any()
    # 16 rows at 2 at a time for 0.6 s each: > 4.8 s of run, so >= 3 tokens of 2 s were needed
    assert stats["token_calls"] >= 3, stats
    assert_no_duplicate_creates(stats, 16)


def test_failed_requests_report_the_service_message(emu):
    emu.configure(processing_seconds=0.2, faults=Faults(failure_rate=0.1, seed=4))
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "fail")
    try:
        gdf, results = run(emu, client, root, 30, tag="f")
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    injected = error_json_by_prefix(emu, root)
    print(f"\nfailure_rate .1: failed={stats['failed']} succeeded={stats['succeeded']}")
    assert stats["failed"] >= 1 and stats["succeeded"] >= 1, stats
    failed = status[status["state"] == "failed"]
    done = status[status["state"] == "done"]
    assert len(failed) + len(done) == 30
    assert len(failed) == stats["failed"] == len(injected)
    # the failed rows are exactly those the service wrote error.json for, with its message
    row_urls = {
        label: results.datasets.loc[label].encoding["xasync"]["row_url"] for label in gdf.index
    }
    assert {row_urls[label] for label in failed.index} == set(injected)
    for label in failed.index:
        message = injected[row_urls[label]]
        assert message and message in failed.loc[label, "error"]
        with pytest.raises(
            xasync.ProcessingError, match=message[:30].replace("(", r"\(").replace(")", r"\)")
        ):
            results.datasets.loc[label]["ndvi"].compute()
    for label in done.index[:5]:
        values = results.datasets.loc[label]["ndvi"].values
        assert np.isfinite(values).all() and values.std() > 0
    assert_no_duplicate_creates(stats, 30)


def test_delayed_visibility_marks_nothing_failed(emu):
    emu.configure(processing_seconds=0.1, faults=Faults(visibility_delay=1.2, seed=1))
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "lag")
    try:
        _, results = run(emu, client, root, 8)
    finally:
        client.close()
    status = results.status()
    assert (status["state"] == "done").all(), status[["state", "error"]]
    assert status["error"].isna().all()
    assert_no_duplicate_creates(emu.stats, 8)
    for ds in results:
        assert np.isfinite(ds["ndvi"].values).all()


def test_learned_limit_is_the_accounts_limit(emu):
    """After learning K from 429s, the client uses all K slots and gets no more 429s."""
    emu.configure(concurrency_limit=2, processing_seconds=0.4)
    client = learning_client(emu)
    root = fresh_root(emu, "learn")
    try:
        _, first = run(emu, client, root, 8, tag="a")
        assert emu.stats["rate_limited"] > 0  # it had to learn
        emu.reset()  # same account, same process-wide submitter: only the counters are zeroed
        gdf = fields(10, lat0=47.0)
        second = gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/b",
            storage_options=emu.storage_options,
            client=client,
        ).wait(timeout=60, progress=False)
    finally:
        client.close()
    stats = emu.stats
    print(
        f"\nlearned K: second batch max_running={stats['max_running']} 429s={stats['rate_limited']}"
    )
    assert (first.status()["state"] == "done").all() and (second.status()["state"] == "done").all()
    assert stats["rate_limited"] == 0, stats
    # 10 rows of 0.4 s: using only 1 of the 2 slots would halve the throughput
    assert stats["max_running"] == 2, stats


def test_service_down_fails_rows_in_bounded_time_and_compute_raises(emu):
    """Every create answers 5xx: rows end failed with the reason, nothing is bought, and
    computing such a row raises at once instead of waiting for a delivery that cannot come."""
    emu.configure(faults=Faults(server_error=1.0, seed=3))
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "down")
    opts = xasync.SubmitOptions(max_create_attempts=2, ambiguous_grace=0.2)
    try:
        results = fields(3, lat0=43.0).xasync.process(  # geometries no other test requests
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/down",
            storage_options=emu.storage_options,
            client=client,
            options=opts,
        )
        results.wait(timeout=60, progress=False)
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    assert (status["state"] == "failed").all(), status
    assert status["error"].str.contains("could not create").all(), status["error"].tolist()
    assert status["error"].str.contains("HTTP 50[023]").all(), status["error"].tolist()
    assert stats["creates"] == 0 and stats["create_calls"] == 3 * 2

    outcome: list[BaseException | None] = []

    def compute() -> None:
        try:
            results[0]["ndvi"].compute(scheduler="synchronous")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=compute, daemon=True)  # a hang must not block the suite
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "computing a row that was never created still waits after 10 s"
    assert isinstance(outcome[0], xasync.ProcessingError), outcome
    assert "could not create" in str(outcome[0])


def test_same_request_to_two_deliveries_does_not_mix_them(emu):
    """The same rows delivered under two roots in one process: each dataset reads its own."""
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "two")
    gdf = fields(2, lat0=44.0)
    kwargs = dict(time=TIME, resolution=RES, storage_options=emu.storage_options, client=client)
    try:
        good = gdf.xasync.process(NDVI, delivery=f"{root}/good", **kwargs)
        good.wait(timeout=60, progress=False)
        assert (good.status()["state"] == "done").all()
        emu.configure(faults=Faults(failure_rate=1.0, seed=1))  # the second delivery fails
        bad = gdf.xasync.process(NDVI, delivery=f"{root}/bad", **kwargs)
        bad.wait(timeout=60, progress=False)
    finally:
        client.close()
    status = bad.status()
    assert (status["state"] == "failed").all(), status
    assert emu.stats["creates"] == 4  # a new root is a new purchase
    for ds in bad:
        assert ds.encoding["xasync"]["row_url"].startswith(f"{root}/bad/")
        with pytest.raises(xasync.ProcessingError):
            ds["ndvi"].compute()  # must not serve the files delivered under the other root
    for ds in good:  # and the first delivery is still what its datasets read
        assert np.isfinite(ds["ndvi"].compute().values).all()


def test_flaky_token_endpoint_with_short_tokens(emu):
    """5xx and drops also on the token endpoint, tokens of 2 s: still all done, bought once."""
    emu.configure(
        concurrency_limit=3,
        processing_seconds=0.5,
        token_lifetime=2,
        faults=Faults(server_error=0.1, drop_connection=0.05, apply_to_token=True, seed=9),
    )
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "tokfault")
    try:
        _, results = run(
            emu, client, root, 12, tag="t", options=xasync.SubmitOptions(ambiguous_grace=0.5)
        )
    finally:
        client.close()
    status = results.status()
    stats = emu.stats
    print(
        f"\nflaky token: token_calls={stats['token_calls']} 5xx={stats['server_errors']} dropped={stats['dropped']}"
    )
    assert (status["state"] == "done").all(), status[["state", "error"]]
    # 12 rows at K=3 run >= 4 x 0.5 s at the emulator, past the 2 s token: one refresh at least
    assert stats["token_calls"] >= 2
    assert_no_duplicate_creates(stats, 12)


def test_rerun_after_an_outage_buys_each_row_once(emu):
    """Rows that failed because the service was down are bought on the next run, once."""
    gdf = fields(3, lat0=42.0)
    root = fresh_root(emu, "outage")
    kwargs = dict(
        time=TIME, resolution=RES, delivery=f"{root}/o", storage_options=emu.storage_options
    )
    emu.configure(faults=Faults(server_error=1.0, seed=1))
    client = xasync.Client.from_emulator(emu)
    try:
        down = gdf.xasync.process(
            NDVI,
            client=client,
            options=xasync.SubmitOptions(max_create_attempts=1, ambiguous_grace=0.1),
            **kwargs,
        ).wait(timeout=30, progress=False)
        assert (down.status()["state"] == "failed").all()
        assert emu.stats["creates"] == 0
        emu.configure(faults=Faults())
        back = gdf.xasync.process(NDVI, client=client, **kwargs).wait(timeout=60, progress=False)
    finally:
        client.close()
    assert (back.status()["state"] == "done").all(), back.status()
    assert_no_duplicate_creates(emu.stats, 3)
    for ds in back:
        assert np.isfinite(ds["ndvi"].values).all()


def test_wait_timeout_is_a_typed_error_and_the_run_goes_on(emu):
    emu.configure(processing_seconds=3.0)
    client = xasync.Client.from_emulator(emu)
    root = fresh_root(emu, "timeout")
    try:
        results = fields(2, lat0=45.0).xasync.process(
            NDVI,
            time=TIME,
            resolution=RES,
            delivery=f"{root}/t",
            storage_options=emu.storage_options,
            client=client,
        )
        with pytest.raises(xasync.DeliveryTimeout, match="within 0.5 s"):
            results.wait(timeout=0.5, progress=False)
        results.wait(timeout=60, progress=False)  # waiting again picks the run up
    finally:
        client.close()
    assert (results.status()["state"] == "done").all()
    assert_no_duplicate_creates(emu.stats, 2)


def test_an_outage_ends_the_rows_queued_beyond_the_window(emu):
    """K = 1 and 300 rows: one runs, a window of rows waits for the slot as tasks, the others as
    URLs without a task (``RowQueue.deferred``). When the API and S3 go away, every row still
    reaches a final state, nothing more is bought, and the job's run in the loop ends (nothing
    may wait forever for a create that never ends)."""
    from ._proxy import Cutoff

    rows = 300
    emu.configure(concurrency_limit=1, processing_seconds=1.5)
    cut = Cutoff(emu, "outage-window")
    try:
        results = cut.process(fields(rows, lat0=36.0))
        states = lambda: [r.state.value for r in results.job.snapshot()]  # noqa: E731
        deadline = time.monotonic() + 120
        while states().count("running") != 1:
            assert time.monotonic() < deadline, "the first request never ran"
            time.sleep(0.05)
        bought = emu.stats["creates"]
        cut.down()
        with pytest.raises(xasync.TransportError):
            results.wait(timeout=300, progress=False)
        status = results.status()
        assert status["state"].isin(["done", "failed"]).all()
        assert (status["request_id"].isna()).sum() == rows - bought
        assert emu.stats["creates"] == bought
        # and the job's run in the submitter's loop ends (it waited for the deferred rows)
        while _job_runs(results.job):
            assert time.monotonic() < deadline + 300, "the job's run never ended"
            time.sleep(0.05)
    finally:
        cut.close()


def _job_runs(job) -> int:
    """How many runs of ``job`` the submitter's loop holds (other tests' may still run)."""
    import asyncio

    from xasync.submitter import get_submitter

    async def count() -> int:
        tasks = asyncio.all_tasks()
        runs = [t.get_coro() for t in tasks if t.get_coro().__qualname__ == "Submitter._run_job"]
        return sum(c.cr_frame is not None and c.cr_frame.f_locals.get("job") is job for c in runs)

    return asyncio.run_coroutine_threadsafe(count(), get_submitter()._loop).result(60)
