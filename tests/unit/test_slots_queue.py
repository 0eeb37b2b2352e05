"""Account slots with many queued rows: waking them costs no more than the condition's share.

Every freed slot wakes the waiters of the slots' condition. With all of a 100,000-row job's
rows on it, each release woke every row (and each re-checked every 0.5 s), so the submitter's
thread spent a core on it for the whole job. The waiters beyond ``CONDITION_WAITERS`` now queue
before it. Counted, not timed.
"""

from __future__ import annotations

import asyncio

import pytest
from integration._shared import NDVI_NO_MASK as NDVI
from integration._shared import fields
from integration._shared import until as _until

import xasync
from xasync.submitter import get_submitter, slots
from xasync.submitter.slots import Account

QUEUED = 600
RELEASES = 20


def _run(coro):
    return asyncio.run(coro)


async def _counting(account: Account) -> dict[str, int]:
    """Count the tasks inside the condition's ``wait`` (now and at most)."""
    seen = {"now": 0, "most": 0}
    wait = account.cond.wait

    async def counted():
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            return await wait()
        finally:
            seen["now"] -= 1

    account.cond.wait = counted  # type: ignore[method-assign]
    return seen


def test_queued_rows_beyond_a_bound_do_not_wait_on_the_condition():
    async def main():
        account = Account(limit=1)
        seen = await _counting(account)
        assert await account.acquire()  # the one slot is busy
        got: list[int] = []

        async def row(i: int) -> None:
            if await account.acquire():
                got.append(i)
                account.release(finished=True)

        tasks = [asyncio.create_task(row(i)) for i in range(QUEUED)]
        await asyncio.sleep(0.05)
        assert account.waiting == QUEUED
        account.release(finished=True)  # the rows now go one after the other
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        return got, seen["most"]

    got, most = _run(main())
    assert sorted(got) == list(range(QUEUED))  # every row had its turn
    assert got == list(range(QUEUED))  # in the order they asked (FIFO before the condition)
    # every release wakes all of the condition's waiters (and they re-check every 0.5 s):
    # all QUEUED rows were on it before
    assert most <= slots.CONDITION_WAITERS, most


def test_a_cancel_ends_every_queued_waiter_without_a_slot():
    async def main():
        account = Account(limit=2)
        assert await account.acquire() and await account.acquire()
        stop = {"now": False}
        tasks = [
            asyncio.create_task(account.acquire(lambda: stop["now"])) for _ in range(RELEASES * 10)
        ]
        await asyncio.sleep(0.05)
        stop["now"] = True  # seen within the condition's 0.5 s re-check, then down the queue
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        return results, account.in_flight, account.waiting

    results, in_flight, waiting = _run(main())
    assert results == [False] * (RELEASES * 10)
    assert in_flight == 2 and waiting == 0


# -- a cancelled job's queued rows, against the emulator --------------------------------------

ROWS = 600


def _fields(n: int, lon0: float):
    """``n`` small boxes in one line eastwards from ``lon0`` (0.01 deg apart)."""
    return fields(n, lon0=lon0, per_row=n)


def _loop_tasks() -> int:
    """How many tasks the submitter's loop holds."""

    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), get_submitter()._loop).result(60)


class _Counts:
    """Ledger changes and notifications of one job, per URL (patched on the ledger instance)."""

    def __init__(self, ledger) -> None:
        self.updated: dict[str, int] = {}
        self.bulk = 0
        self.notified = 0
        update, update_many, notify = ledger.update, ledger.update_many, ledger.cond.notify_all

        def counted_update(url, **changes):
            self.updated[url] = self.updated.get(url, 0) + 1
            return update(url, **changes)

        def counted_many(urls, **changes):
            self.bulk += 1
            return update_many(urls, **changes)

        def counted_notify():
            self.notified += 1
            notify()

        ledger.update, ledger.update_many = counted_update, counted_many
        ledger.cond.notify_all = counted_notify
        self._undo = lambda: (
            [vars(ledger).pop(n) for n in ("update", "update_many")]
            and (vars(ledger.cond).pop("notify_all"))
        )


@pytest.mark.parametrize("early_claims", [False, True])
def test_a_cancel_ends_the_queued_rows_in_bulk(emu, own_account, early_claims):
    """After a cancel, the rows still waiting for a slot end in one ledger update and one
    notification, not one row after the other (each woke in turn, failed with its own update and
    notified twice: 100 us of the submitter's CPU per row, 10 s for 100,000 queued rows)."""
    client, root = own_account(1, 0.2, "bulk")
    kw = {
        "time": ("2024-06-01", "2024-06-30"),
        "resolution": 0.0002,
        "storage_options": emu.storage_options,
        "client": client,
    }
    try:
        if early_claims:  # learned short durations: the next row claims while it waits
            _fields(3, 20.0).xasync.process(NDVI, delivery=f"{root}/warm", **kw).wait(
                timeout=120, progress=False
            )
            assert (
                get_submitter().account(client).claims_early(xasync.SubmitOptions().claim_timeout)
            )
        with emu.hold():
            results = _fields(ROWS, 14.0).xasync.process(NDVI, delivery=f"{root}/run", **kw)

            def states():
                return results.status()["state"].tolist()

            _until(lambda: "running" in states(), "the first request to run")
            _until(lambda: results.job.ledger.get(results.job.urls[-1]) is not None, "all rows")
            # the rows beyond a window wait as URLs, not as one task each (each would have to
            # wake once to end): the submitter's loop holds far fewer tasks than rows
            assert _loop_tasks() < ROWS // 2
            counts = _Counts(results.job.ledger)
            try:
                results.cancel()
                _until(lambda: states().count("failed") == ROWS - 1, "the queued rows to end")
            finally:
                counts._undo()
        results.wait(timeout=120, progress=False)
    finally:
        emu.release()
    assert sorted(states()) == ["done"] + ["failed"] * (ROWS - 1)
    queued = results.job.urls[1:]
    # one bulk update for the queued rows; at most the row at the head of the queue (and the one
    # claiming ahead) fail on their own
    assert counts.bulk == 1
    assert sum(counts.updated.get(u, 0) for u in queued) <= 2
    assert counts.notified <= 10, counts.notified
