"""Per-account concurrency slots, K learning and the learned polling clock (live in the loop).

``in_flight`` counts slots taken (creates under way + requests running); ``running`` only the
requests the service confirmed (accepted, not yet seen finished). When K is not configured it is
learned: a 429 means the account allows no more than what is confirmed running, and every
acceptance proves it allows at least that many.

The next K requests of an account may claim (and build their body) while they wait for a slot
(:meth:`Account.claims_early`), so that a freed slot is followed by the create at once.

Each account also has its polling clock (:class:`~xasync.submitter.clock.PollClock`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from xasync.backoff import Backoff
from xasync.submitter.clock import PollClock

__all__ = ["Account", "PollClock"]

#: Early claims only while this many learned durations fit in ``claim_timeout``.
EARLY_CLAIM_SPAN = 4.0


class Account:
    """Concurrency slots of one account, with K learning and a polling clock."""

    def __init__(self, limit: int | None) -> None:
        self.learning = limit is None
        self.cap = limit if limit is not None else 64
        self.in_flight = 0
        self.running = 0
        self.not_before = 0.0
        self.cond = asyncio.Condition()
        self._wakers: set[asyncio.Task] = set()
        self.clock = PollClock()
        self.backoff = Backoff(base=0.5, cap=30.0)
        #: Permits to claim before holding a slot (see :meth:`claims_early`): K, the next
        #: requests to start.
        self.ahead = asyncio.Semaphore(max(1, self.cap))

    def claims_early(self, claim_timeout: float) -> bool:
        """Whether the next requests may claim while they wait for a slot.

        Only with a configured K (the ``ahead`` permits are K) and once the learned durations
        are known to be short next to ``claim_timeout``: a claim then waits for a slot about
        one duration, far from being taken for a stale one by another process.
        """
        upper = self.clock.upper
        return not self.learning and upper is not None and EARLY_CLAIM_SPAN * upper < claim_timeout

    async def acquire(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Take a slot; ``False`` (no slot taken) if ``cancelled()`` turns true meanwhile."""
        loop = asyncio.get_running_loop()
        async with self.cond:
            while True:
                if cancelled():
                    return False
                delay = self.not_before - loop.time()
                if self.in_flight < self.cap and delay <= 0:
                    break
                # back off (after a 429) before taking a slot, or wait for a free one
                timeout = min(0.5, delay) if delay > 0 else 0.5
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.cond.wait(), timeout=timeout)
            self.in_flight += 1
        return True

    def take(self) -> None:
        """Count a request already running at the service (attached to, not created)."""
        self.in_flight += 1
        self.started()

    def started(self) -> None:
        """The service accepted one of our requests: it runs until we see it finished."""
        self.running += 1
        if self.learning and self.running > self.cap:
            self.cap = self.running

    def release(self, *, finished: bool = False) -> None:
        """Free a slot; ``finished=True`` when it held a request that ran (and ended).

        Synchronous: waiters are woken by a separate task, so the caller's own outcome (e.g. an
        outage that stops the job) is recorded before anyone can take the slot.
        """
        self.in_flight = max(0, self.in_flight - 1)
        if finished:
            self.running = max(0, self.running - 1)
        task = asyncio.get_running_loop().create_task(self._wake())
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)

    async def _wake(self) -> None:
        async with self.cond:
            self.cond.notify_all()

    def rate_limited(self, retry_after: float | None, attempt: int = 0) -> float:
        """Learn from a 429 and return how long to wait (``Retry-After`` honoured)."""
        loop = asyncio.get_running_loop()
        if self.learning:
            # the service refused while these were running: that is all the account allows
            self.cap = max(1, min(self.cap, self.running))
        hint = retry_after if retry_after is not None else 1.0
        wait = self.backoff.delay(attempt, retry_after=hint)
        self.not_before = max(self.not_before, loop.time() + wait)
        return wait
