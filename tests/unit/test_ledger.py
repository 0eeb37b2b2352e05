"""xasync.ledger: one follower per request URL, final outcomes stay final, jobs read it."""

from __future__ import annotations

import threading

from xasync.jobs import Job, RowStatus, State
from xasync.ledger import Entry, Ledger, Stage


def test_one_follower_per_url_across_threads():
    ledger = Ledger()
    winners = []

    def work(i: int) -> None:
        if ledger.follow("s3://b/p/x", i):
            winners.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert ledger.get("s3://b/p/x").follower == winners[0]


def test_final_entries_stay_final_unless_restarted():
    ledger = Ledger()
    assert ledger.follow("u", 1)
    ledger.update("u", stage=Stage.DONE, request_id="R", cost=10.0)
    assert ledger.update("u", stage=Stage.RUNNING).stage is Stage.DONE
    assert not ledger.follow("u", 2)  # done: nobody follows it again
    assert ledger.get("u").follower is None
    assert ledger.follow("u", 2, restart=True)
    assert ledger.get("u").stage is Stage.QUEUED


def test_a_failure_that_bought_nothing_is_taken_over():
    ledger = Ledger()
    ledger.follow("u", 1)
    ledger.update("u", stage=Stage.FAILED, error="refused")
    assert ledger.get("u").bought_nothing
    assert ledger.follow("u", 2)


def test_abandon_lets_readers_fall_back_and_others_follow():
    ledger = Ledger()
    ledger.follow("u", 1)
    assert not ledger.follow("u", 2)
    ledger.abandon("u", 2)  # not the follower: nothing happens
    assert ledger.get("u").follower == 1
    ledger.abandon("u", 1)
    assert ledger.get("u") is None
    assert ledger.follow("u", 2)


def test_wait_returns_when_final():
    ledger = Ledger()
    ledger.follow("u", 1)
    timer = threading.Timer(0.05, lambda: ledger.update("u", stage=Stage.DONE))
    timer.start()
    assert ledger.wait("u", 30).stage is Stage.DONE
    timer.join()


def _rows(*urls):
    return [RowStatus(token=f"t{i}", row_url=u, label=f"r{i}") for i, u in enumerate(urls)]


def test_a_shared_request_is_counted_once_and_split_among_its_rows():
    ledger = Ledger()
    job = Job(_rows("a", "a", "b"), ledger=ledger)
    for url, cost in (("a", 10.0), ("b", 4.0)):
        ledger.follow(url, job.id)
        ledger.update(url, stage=Stage.DONE, request_id=f"R{url}", cost=cost, bought_by=job.id)
    rows = job.snapshot()
    assert [r.cost_pu for r in rows] == [5.0, 5.0, 4.0]
    assert [r.requests for r in rows] == [("Ra",), ("Ra",), ("Rb",)]
    assert job.total_cost() == 14.0
    assert job.finished


def test_a_request_bought_by_another_job_costs_this_one_nothing():
    ledger = Ledger()
    first, second = Job(_rows("a"), ledger=ledger), Job(_rows("a"), ledger=ledger)
    ledger.follow("a", first.id)
    ledger.update("a", stage=Stage.DONE, request_id="R", cost=10.0, bought_by=first.id)
    assert first.snapshot()[0].cost_pu == 10.0 and not first.snapshot()[0].reused
    assert second.snapshot()[0].cost_pu == 0.0 and second.snapshot()[0].reused
    reattached = Job(_rows("a"), ledger=ledger, charge_reused=True)
    assert reattached.snapshot()[0].cost_pu == 10.0  # what the delivered request was charged


def test_a_failure_local_to_one_job_leaves_the_request_free_for_others():
    ledger = Ledger()
    a, b = Job(_rows("u"), ledger=ledger), Job(_rows("u"), ledger=ledger)
    ledger.follow("u", a.id)
    ledger.update("u", stage=Stage.FAILED, error="cancelled", local_to=a.id)
    assert a.snapshot()[0].state is State.FAILED
    assert b.snapshot()[0].state is State.QUEUED
    assert a.wait(5) and not b.wait(0.01)
    assert ledger.follow("u", b.id)  # nothing was bought: b may buy it


def test_abort_wakes_waiters():
    ledger = Ledger()
    job = Job(_rows("u"), ledger=ledger)
    timer = threading.Timer(0.05, lambda: job.abort(RuntimeError("x")))
    timer.start()
    assert job.wait(30)
    timer.join()
    assert isinstance(job.fatal, RuntimeError)


def test_record_is_a_whole_entry():
    ledger = Ledger()
    ledger.record("u", Entry("ignored", Stage.DONE, "R", outputs={"a": "s3://x"}))
    assert ledger.get("u").url == "u" and ledger.get("u").outputs == {"a": "s3://x"}


def _states() -> dict[str, Entry | None]:
    """One URL per kind of entry a job's start meets."""
    return {
        "none": None,
        "queued-other": Entry("queued-other", follower=7),
        "queued-mine": Entry("queued-mine", follower=1),
        "queued-free": Entry("queued-free"),
        "running-other": Entry("running-other", Stage.RUNNING, "r", follower=7),
        "done": Entry("done", Stage.DONE, "r", outputs={"ndvi": "x"}),
        "failed-bought": Entry("failed-bought", Stage.FAILED, "r", error="e"),
        "failed-nothing": Entry("failed-nothing", Stage.FAILED, error="cancelled", local_to=7),
    }


def _ledger() -> Ledger:
    ledger = Ledger()
    for url, entry in _states().items():
        if entry is not None:
            ledger.record(url, entry)
    return ledger


def _comparable(entry: Entry | None):
    return None if entry is None else {**vars(entry), "finished": entry.finished is not None}


def test_follow_many_answers_and_writes_as_follow_one_by_one():
    for restart in (False, True):
        one, many = _ledger(), _ledger()
        urls = list(_states())
        answers = [one.follow(u, 1, restart=restart) for u in urls]
        assert many.follow_many([(u, restart) for u in urls], 1) == answers
        assert [_comparable(e) for e in many.entries(urls)] == [
            _comparable(e) for e in one.entries(urls)
        ]
    assert answers == [True, False, True, True, False, True, True, True]  # restart=True


def test_end_unbought_is_follow_then_a_local_failure():
    """A job cancelled before it started: the URLs it may follow end failed for it alone, the
    others are refused (the caller attaches to them) and left as they are."""
    for restart in (False, True):
        one, many = _ledger(), _ledger()
        urls = list(_states())
        refused = []
        for url in urls:
            if one.follow(url, 1, restart=restart):
                one.update(url, stage=Stage.FAILED, error="cancelled", local_to=1)
            else:
                refused.append(url)
        assert many.end_unbought([(u, restart) for u in urls], 1, "cancelled") == refused
        assert [_comparable(e) for e in many.entries(urls)] == [
            _comparable(e) for e in one.entries(urls)
        ]
