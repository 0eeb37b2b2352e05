"""Account slots with many queued rows: waking them costs no more than the condition's share.

Every freed slot wakes the waiters of the slots' condition. With all of a 100,000-row job's
rows on it, each release woke every row (and each re-checked every 0.5 s), so the submitter's
thread spent a core on it for the whole job. The waiters beyond ``CONDITION_WAITERS`` now queue
before it. Counted, not timed.
"""

from __future__ import annotations

import asyncio

from xasync.submitter import slots
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
