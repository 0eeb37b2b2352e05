"""One job's run in the loop: a decision per request URL, then the action, outcomes to the ledger.

Rows sharing a request URL share one task. Each task decides with
:func:`xasync.submitter.decision.decide` from one S3 probe of all the job's prefixes and the
ledger, then creates, follows, watches or reuses. Any TransportError that escapes a task means
the API and S3 are both out of reach: the job is stopped (:meth:`JobRun.outage`): nothing more is
created, every unfinished row ends ``failed``, and ``Results.wait`` raises the TransportError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from xasync import delivery
from xasync.errors import TransportError, XasyncError
from xasync.jobs import Job
from xasync.ledger import LEDGER, Entry, Stage, utcnow
from xasync.submitter.creating import create
from xasync.submitter.decision import Action, Kind, decide
from xasync.submitter.options import Order, SubmitOptions
from xasync.submitter.polling import poll_until_finished
from xasync.submitter.queueing import RowQueue
from xasync.submitter.s3 import Confirmer, probe_until_answer
from xasync.submitter.slots import CONDITION_WAITERS, Account
from xasync.submitter.starting import start_all
from xasync.submitter.trace import trace

if TYPE_CHECKING:
    from xasync.submitter.loop import Submitter

logger = logging.getLogger(__name__)

__all__ = ["OWNER", "JobRun"]


#: Rows finishing within this share of the learned duration share one confirming listing
#: (at most ``CONFIRM_WINDOW_MAX`` seconds apart).
CONFIRM_WINDOW_SHARE = 1.0
CONFIRM_WINDOW_MAX = 10.0
#: This process's name in claims (in-process exclusivity comes from the ledger).
OWNER = f"{uuid.uuid4().hex}-{os.getpid()}"


class JobRun:
    """The coroutines that take the requests of one job to a final state."""

    def __init__(
        self,
        job: Job,
        orders: list[Order],
        client: Any | None,
        fs: Any,
        opts: SubmitOptions,
        submitter: Submitter,
    ) -> None:
        self.job, self.client, self.fs, self.opts = job, client, fs, opts
        self.ledger = job.ledger if job.ledger is not None else LEDGER
        self.groups: dict[str, list[Order]] = {}
        for order in orders:
            self.groups.setdefault(order.row_url, []).append(order)
        self.account = submitter.account(client) if client is not None else None
        if self.account is not None:
            self.account.probing = opts.probe_creates
        self.api = submitter.api(client) if client is not None else None
        self.owner = OWNER
        keys = sum(len(g[0].identifiers) + 2 for g in self.groups.values())
        self.confirmer = Confirmer(
            fs,
            opts,
            listing_pages=max(1, -(-keys // 1000)),
            rows=len(self.groups),
            window=self._confirm_window,
            tail=lambda: not self.unsettled,
        )
        #: Request URLs whose task has not reached confirmation (nor ended) yet.
        self.unsettled: set[str] = set(self.groups)
        self.stopped: TransportError | None = None
        self.creating: set[str] = set()
        self.rows = RowQueue()
        self.tasks = self.rows.tasks
        self.seen_ids: dict[str, tuple[str, ...]] = {}
        self.tally: Counter = Counter()

    @property
    def slots(self) -> Account:
        """The account's slots (only for jobs with a client)."""
        assert self.account is not None, "no client: nothing is created or polled"
        return self.account

    @property
    def service(self) -> Any:
        """The AsyncApi (only for jobs with a client)."""
        assert self.api is not None, "no client: nothing is created or polled"
        return self.api

    def _confirm_window(self) -> float:
        """How long rows gather before a confirming listing: a share of the learned duration
        (the slot is free already; a row only shows ``running`` a little longer)."""
        first = self.account.clock.first if self.account is not None else None
        return min(CONFIRM_WINDOW_MAX, CONFIRM_WINDOW_SHARE * first) if first else 0.0

    # -- the job -----------------------------------------------------------------------------
    async def run(self, probe_first: bool) -> None:
        """Decide and act for every request URL of the job."""
        confirm_task = asyncio.create_task(self.confirmer.run())
        try:
            seen: dict[str, delivery.RowDelivery] = {}
            if probe_first and self.groups:
                with contextlib.suppress(TransportError):  # decided without a view, see decide
                    seen = await probe_until_answer(
                        self.fs,
                        {u: g[0].identifiers for u, g in self.groups.items()},
                        self.opts.outage_attempts,
                    )
            self.seen_ids = {u: row.request_ids for u, row in seen.items()}
            start_all(self, seen)
            self._log_decisions()
            await self.rows.idle()
        finally:
            confirm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await confirm_task

    def window(self) -> int:
        """How many rows may wait to be created as tasks; the others wait as URLs."""
        cap = self.account.cap if self.account is not None else 1
        return 2 * max(CONDITION_WAITERS, 2 * cap)

    def _next_deferred(self) -> None:
        """A create ended (or was given up): start the next deferred rows."""
        if self.rows.deferred and (self.job.is_cancelled() or self.stopped is not None):
            self.end_queued()
            return
        for url in self.rows.next_deferred(self.window() - len(self.creating)):
            self.creating.add(url)  # counted at once (the task starts later)
            self.rows.spawn(url, self.guarded(url, self._create(url, self.groups[url][0])))

    def _log_decisions(self) -> None:
        tally = self.tally
        if tally.get(Kind.CREATE):
            logger.info(
                "submitting %d requests (%d reused, %d running, %d followed by another call)",
                tally[Kind.CREATE],
                tally.get(Kind.REUSE, 0) + tally.get(Kind.KEEP, 0),
                tally.get(Kind.FOLLOW, 0) + tally.get(Kind.WATCH, 0),
                tally.get(Kind.ATTACH, 0),
            )
        else:
            logger.debug("nothing to submit: %s", dict(tally))

    def outage(self, exc: TransportError) -> None:
        """API and S3 out of reach: stop buying, end every unfinished row, tell the user."""
        if self.stopped is not None:
            return
        self.stopped = exc
        logger.error("xasync stopped this job: %s", exc)
        self.job.cancel()  # nothing is created after this point
        # one hold of the ledger's lock: a waiter must not see every row final before the error
        with self.ledger.cond:
            for url in self.groups:
                entry = self.ledger.get(url)
                if entry is not None and (
                    entry.is_final or entry.follower not in (None, self.job.id)
                ):
                    continue  # final, or another call's to follow
                if entry is not None and entry.request_id:
                    self.ledger.update(url, stage=Stage.FAILED, error=f"lost contact: {exc}")
                else:
                    self.fail_not_bought(url, self.not_bought_message())
                task = self.tasks.get(url)
                if (
                    task is not None
                    and url not in self.creating
                    and task is not asyncio.current_task()
                ):
                    task.cancel()
            self.end_queued()  # the rows waiting for a slot, and the deferred ones (no task)
            self.job.abort(exc)

    def end_queued(self) -> None:
        """The job was cancelled (or stopped): end every row still waiting for a slot, and
        every deferred row, at once: one ledger update for all of them (each waiting task is
        cancelled where it waits), instead of each row waking in turn to find the job
        cancelled and failing with two ledger notifications of its own."""
        waiting, deferred = self.rows.end_all()
        urls = waiting + deferred
        if not urls:
            return
        self.unsettled.difference_update(deferred)
        message = self.not_bought_message()
        logger.debug("%d queued rows: %s", len(urls), message)
        self.ledger.update_many(urls, stage=Stage.FAILED, error=message, local_to=self.job.id)
        self.confirmer.wake.set()

    def not_bought_message(self) -> str:
        """Why a row that was never created ends failed."""
        if self.stopped is not None:
            return f"not submitted: the job stopped ({self.stopped}); nothing was bought"
        return "cancelled before it was submitted (nothing was bought)"

    # -- one request URL ---------------------------------------------------------------------
    async def guarded(self, url: str, work: Awaitable[None]) -> None:
        """Run ``url``'s ``work`` (its task's body): its errors become the row's outcome."""
        try:
            await work
        except asyncio.CancelledError:
            if url not in self.rows.ended:  # ended rows are final already
                self.ledger.abandon(url, self.job.id)
            raise
        except TransportError as exc:
            with self.ledger.cond:  # a waiter sees this row fail and the job's error together
                self._fail(url, str(exc))
                self.outage(exc)
        except XasyncError as exc:
            self._fail(url, str(exc))
        finally:
            if not self.rows.is_deferred(url):
                self.unsettled.discard(url)
                self.confirmer.wake.set()  # the rows waiting for confirmation may be the last

    def decide(self, url: str, seen: delivery.RowDelivery | None, known: Entry | None) -> Action:
        """What to do for ``url`` from ``seen`` (S3) and ``known`` (its ledger entry)."""
        action = decide(
            seen,
            known,
            me=self.job.id,
            can_create=self.client is not None and self.groups[url][0].body is not None,
            can_poll=self.client is not None,
            rebuy_failed=self.opts.resubmit_failed,
        )
        self.tally[action.kind] += 1
        return action

    async def _act(self, url: str, order: Order, action: Action) -> None:
        try:
            await self._do(url, order, action)
        finally:
            if url not in self.rows.ended:  # decided before it queued
                self.job.decided(url)

    async def _do(self, url: str, order: Order, action: Action) -> None:
        if action.kind is Kind.KEEP:
            return
        following = action.kind is not Kind.ATTACH and self.ledger.follow(
            url, self.job.id, restart=action.restart
        )
        self.job.decided(url)
        work = self.begin(url, order, action, following)
        if work is not None:
            await work

    def begin(
        self, url: str, order: Order, action: Action, following: bool
    ) -> Coroutine[Any, Any, None] | None:
        """Act on a decision (``following``: :meth:`Ledger.follow` handed ``url`` to this job):
        what ends at once is done here; what must wait is returned as a coroutine to await."""
        kind = action.kind
        if not following:
            return self._attach(url)
        if kind is Kind.REUSE:
            assert action.seen is not None
            self._record(url, action.seen, bought=False)
        elif kind is Kind.FAIL:
            self._fail(url, action.message or "failed")
        elif kind is Kind.CREATE:
            if len(self.creating) >= self.window():  # created later, see _next_deferred
                self.rows.defer(url)
                return None
            self.creating.add(url)  # counted at once (a task may start it later)
            return self._create(url, order)
        elif kind is Kind.FOLLOW:
            logger.info("%s: attaching to running request %s", url, action.request_id)
            assert action.request_id is not None
            self.mark_running(url, action.request_id)
            return self._follow(url, order, action.request_id, created=False)
        elif kind is Kind.WATCH:
            self.mark_running(url, action.request_id)
            return self._settle(url, order, action.request_id, grace=None)
        return None

    async def _create(self, url: str, order: Order) -> None:
        self.creating.add(url)
        try:
            known = self.seen_ids.get(url)
            assert order.body is not None
            created = await create(self, url, order.identifiers, order.body, known)
        finally:
            self.creating.discard(url)
            self._next_deferred()
        if created.error is not None:
            if self.job.is_cancelled():
                self.fail_not_bought(url, created.error)
            else:
                self._fail(url, created.error)
            return
        if not created.by_us:
            self.mark_running(url, created.request_id)
            await self._settle(url, order, created.request_id, grace=None)
            return
        assert created.request_id is not None
        entry = self.ledger.get(url)
        self.ledger.update(
            url,
            stage=Stage.RUNNING,
            request_id=created.request_id,
            submitted=utcnow(),
            bought_by=self.job.id,
            creates=(entry.creates if entry else 0) + 1,
        )
        await self._follow(url, order, created.request_id, created=True)

    async def _follow(self, url: str, order: Order, request_id: str, *, created: bool) -> None:
        loop = asyncio.get_running_loop()
        if not created:
            self.slots.take()
        accepted = loop.time()
        self.slots.following(accepted)
        try:
            await poll_until_finished(self, url, order.identifiers, request_id, accepted)
        finally:
            self.slots.release(finished=True, accepted=accepted)
            trace("released", request_id)
        await self._settle(url, order, request_id, grace=self.opts.visibility_grace)

    async def _attach(self, url: str) -> None:
        """Another job follows ``url``: wait for its outcome; take over if it gives up."""
        pause = 0.05
        while True:
            entry = self.ledger.get(url)
            if entry is None or (entry.bought_nothing and not self.job.is_cancelled()):
                # the follower gave up without buying: decide again from a fresh look at S3
                order = self.groups[url][0]
                seen = await probe_until_answer(
                    self.fs, {url: order.identifiers}, self.opts.outage_attempts
                )
                self.seen_ids[url] = seen[url].request_ids
                await self._act(url, order, self.decide(url, seen[url], self.ledger.get(url)))
                return
            if entry.is_final:
                return
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)

    async def _settle(self, url: str, order: Order, request_id: str | None, grace) -> None:
        self.unsettled.discard(url)
        row = await self.confirmer.confirm(url, order.identifiers, request_id, grace)
        if row is None:
            self._fail(
                url,
                f"request {request_id} finished but neither outputs nor error.json appeared at "
                f"{url} within {self.opts.visibility_grace:g} s",
            )
            return
        trace("confirmed", url)
        self._record(url, row, bought=True)

    # -- outcomes ----------------------------------------------------------------------------
    def mark_claimed(self, url: str) -> None:
        """A create for ``url`` is under way."""
        self.ledger.update(url, stage=Stage.CLAIMED)

    def mark_running(self, url: str, request_id: str | None) -> None:
        """``url``'s request runs (as far as we know)."""
        entry = self.ledger.get(url)
        if entry is None or entry.stage is not Stage.RUNNING or entry.request_id != request_id:
            self.ledger.update(url, stage=Stage.RUNNING, request_id=request_id)

    def _record(self, url: str, row: delivery.RowDelivery, *, bought: bool) -> None:
        entry = self.ledger.get(url)
        stage = Stage.DONE if row.state == "done" else Stage.FAILED
        self.ledger.update(
            url,
            stage=stage,
            request_id=row.request_id,
            cost=row.cost,
            error=row.error,
            outputs=dict(row.outputs),
            bought_by=entry.bought_by if (bought and entry is not None) else None,
        )
        if stage is Stage.FAILED:
            logger.info("%s failed: %s", url, row.error)

    def fail_not_bought(self, url: str, message: str) -> None:
        """This job stopped before buying ``url``: failed for it, free for other calls."""
        logger.debug("%s: %s", url, message)
        self.ledger.update(url, stage=Stage.FAILED, error=message, local_to=self.job.id)

    def _fail(self, url: str, message: str) -> None:
        logger.info("%s failed: %s", url, message)
        # computing these rows must raise at once, not wait for a delivery that cannot come
        self.ledger.update(url, stage=Stage.FAILED, error=message)
