"""Per-account concurrency slots, K learning and the learned polling clock (live in the loop).

``in_flight`` counts slots taken (creates under way + requests running); ``running`` only the
requests the service confirmed (accepted, not yet seen finished). When K is not configured it is
learned: a 429 means the account allows no more than what is confirmed running, and every
acceptance proves it allows at least that many.

The next K requests of an account may claim (and build their body) while they wait for a slot
(:meth:`Account.claims_early`), so that a freed slot is followed by the create at once.

Each account also has its polling clock (:class:`~xasync.submitter.clock.PollClock`).

**Create probes.** With a configured K, every slot taken and the durations learned, a waiter
may take a slot beyond K (a probe; several may be under way) at the moment :func:`~xasync.submitter.probe.probe_time`
gives: its create either finds a slot that a request freed (a 200: the slot is used at once, and
the count comes back to K when the status calls find which request ended) or is refused (a 429:
the slot is given back, no back-off, the next probe is timed knowing all were still running).
Probes are made only while the account's API calls (create attempts, refused probes included,
and status calls) stay within ``PROBE_BUDGET`` per created request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from xasync.backoff import Backoff
from xasync.submitter.clock import RUNNING_SHARE, PollClock
from xasync.submitter.probe import probe_time

__all__ = ["Account", "PollClock"]

#: Early claims only while this many learned durations fit in ``claim_timeout``.
EARLY_CLAIM_SPAN = 4.0
#: Chance that a slot is free at which a create probe is sent.
PROBE_CONFIDENCE = 0.6
#: API calls (create attempts, status calls) per created request that probes may not exceed.
PROBE_BUDGET = 2.4
#: First-call answers the clock must have learned from before probes start.
PROBE_AFTER_SAMPLES = 8
#: The budget counts the calls of about the last this-many-times-K created requests.
BUDGET_WINDOW = 4
#: While probes run, one request in this many keeps the learned first-call time.
LEARN_EVERY = 4
#: At most this many waiters (or twice K, if more) wait on the slots' condition at once; the
#: others queue in FIFO order before it. Every freed slot wakes the condition's waiters, and
#: each of them re-checks at least every 0.5 s: with 100,000 queued rows all on the condition,
#: the loop spent a core waking them (quadratic in the rows over a job).
CONDITION_WAITERS = 64


class Account:
    """Concurrency slots of one account, with K learning and a polling clock."""

    def __init__(self, limit: int | None) -> None:
        self.learning = limit is None
        self.cap = limit if limit is not None else 64
        self.in_flight = 0
        self.running = 0
        self.not_before = 0.0
        self.cond = asyncio.Condition()
        #: Admission to ``cond`` (see ``CONDITION_WAITERS``); FIFO, one wake-up per leaver.
        self.gate = asyncio.Semaphore(max(CONDITION_WAITERS, 2 * self.cap))
        self._wakers: set[asyncio.Task] = set()
        self.clock = PollClock()
        self.backoff = Backoff(base=0.5, cap=30.0)
        #: Permits to claim before holding a slot (see :meth:`claims_early`): K, the next
        #: requests to start.
        self.ahead = asyncio.Semaphore(max(1, self.cap))
        self.probing = False  # create probes allowed (SubmitOptions.probe_creates)
        self.accepted: list[float] = []  # loop times of acceptance of the running requests
        self.calls = 0.0  # API calls made (create attempts, status calls), see count_call
        self.created = 0.0  # requests created, see count_call
        self._probes: set[asyncio.Task] = set()  # the tasks holding a probe slot
        self._full_at = float("-inf")  # all slots were running then (a refused probe)
        self.waiting = 0  # tasks waiting in acquire()
        self._follows = 0  # requests followed (for LEARN_EVERY)

    def claims_early(self, claim_timeout: float) -> bool:
        """Whether the next requests may claim while they wait for a slot.

        Only with a configured K (the ``ahead`` permits are K) and once the learned durations
        are known to be short next to ``claim_timeout``: a claim then waits for a slot about
        one duration, far from being taken for a stale one by another process.
        """
        upper = self.clock.upper
        return not self.learning and upper is not None and EARLY_CLAIM_SPAN * upper < claim_timeout

    async def acquire(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Take a slot (or the probe slot, :meth:`is_probe`); ``False`` (no slot taken) if
        ``cancelled()`` turns true meanwhile."""
        self.waiting += 1
        try:
            async with self.gate:
                return await self._acquire(cancelled)
        finally:
            self.waiting -= 1

    async def _acquire(self, cancelled: Callable[[], bool]) -> bool:
        loop = asyncio.get_running_loop()
        async with self.cond:
            while True:
                if cancelled():
                    return False
                now = loop.time()
                delay = self.not_before - now
                if self.in_flight < self.cap and delay <= 0:
                    break
                probe_at = self._probe_at(now) if delay <= 0 else None
                if probe_at is not None and probe_at <= now:
                    self._probes.add(asyncio.current_task())  # type: ignore[arg-type]
                    break
                # back off (after a 429), wait for a free slot or for the probe's time
                timeout = min(0.5, delay) if delay > 0 else 0.5
                if probe_at is not None:
                    timeout = min(timeout, probe_at - now)
                # in this task, not wait_for's inner one: cancelled while that inner task takes
                # the lock back, wait_for (3.11) can leave the lock held by nobody for good
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self.cond.wait()
            self.in_flight += 1
        return True

    def _probe_at(self, now: float) -> float | None:
        """When to take the probe slot (None: no probe now, see the module docstring)."""
        clock = self.clock
        if (
            not self._probes_on()
            or self.calls + 1 > PROBE_BUDGET * max(self.created, self.cap)
            or self.in_flight < self.cap
        ):
            return None
        assert clock.first is not None
        spread = clock.spread()
        low = clock.first - (1.0 - RUNNING_SHARE) * spread  # first: the (1 - s) quantile
        # in_flight - cap of the running requests are over (successful probes, not yet known
        # which) or about to be (probes under way): most likely the oldest, left out
        alive = sorted(self.accepted)[self.in_flight - self.cap :]
        return probe_time(now, alive, self._full_at, low, low + spread, PROBE_CONFIDENCE)

    def lazy_polls(self) -> bool:
        """Whether a new request's first status call may wait until the learned upper edge
        (probes find the free slots while requests wait for one; one request in
        ``LEARN_EVERY`` keeps the first-call schedule, so the clock keeps learning)."""
        self._follows += 1
        return self.waiting > 0 and self._follows % LEARN_EVERY != 0 and self._probes_on()

    def _probes_on(self) -> bool:
        """Probes on, K configured and the durations learned."""
        return (
            self.probing
            and not self.learning
            and self.clock.first is not None
            and self.clock.samples >= PROBE_AFTER_SAMPLES
        )

    def count_call(self, created: bool = False) -> None:
        """Count one API call (``created``: a create that was accepted) for ``PROBE_BUDGET``,
        over about the last ``BUDGET_WINDOW`` K requests (older counts fade)."""
        if created:
            self.created += 1
            if self.created > BUDGET_WINDOW * self.cap:
                fade = 1.0 - 1.0 / (BUDGET_WINDOW * self.cap)
                self.created *= fade
                self.calls *= fade
        else:
            self.calls += 1

    def is_probe(self) -> bool:
        """Whether the calling task holds a probe slot."""
        return asyncio.current_task() in self._probes

    def probe_refused(self, sent: float) -> None:
        """The probe's create (sent at loop time ``sent``) got a 429: all were running then.
        Gives the probe slot back, with no back-off."""
        self._full_at = max(self._full_at, sent)
        self.release()

    def take(self) -> None:
        """Count a request already running at the service (attached to, not created)."""
        self.in_flight += 1
        self.started()

    def following(self, accepted: float) -> None:
        """One of the running requests was accepted at loop time ``accepted``."""
        self.accepted.append(accepted)

    def started(self) -> None:
        """The service accepted one of our requests: it runs until we see it finished."""
        self._probes.discard(asyncio.current_task())  # type: ignore[arg-type]
        self.running += 1
        if self.learning and self.running > self.cap:
            self.cap = self.running

    def release(self, *, finished: bool = False, accepted: float | None = None) -> None:
        """Free a slot; ``finished=True`` when it held a request that ran (and ended), accepted
        at loop time ``accepted`` (as given to :meth:`following`).

        Synchronous: waiters are woken by a separate task, so the caller's own outcome (e.g. an
        outage that stops the job) is recorded before anyone can take the slot.
        """
        self._probes.discard(asyncio.current_task())  # type: ignore[arg-type]
        if accepted is not None and accepted in self.accepted:
            self.accepted.remove(accepted)
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
