"""The submission queue: one asyncio loop in a daemon thread per process.

What it does for each row of a ``process`` call:

1. **Probe first** (one S3 listing for all rows): a finished delivery is reused at 0 PU, a
   running request (a request-id folder without outputs) is attached to, a failed one is
   reported (not re-bought unless asked); only rows with nothing delivered are created.
2. **At most K in flight** per account. K comes from the client's configuration; when unknown it
   is learned: on a 429 it drops to the number of requests then in flight. 429s back off per
   ``Retry-After`` with jitter.
3. **Never create blindly twice**: a create whose answer was lost (dropped connection, 5xx) may
   have been accepted; the row's prefix is probed after a short grace and an appeared request is
   attached to instead of buying a second one.
4. **Few calls**: the first status call comes when the request is expected to be finished (learned
   from earlier requests), then at intervals that grow with the waiting time. A slot is freed on the
   404 that ends a request; outputs / ``error.json`` are then confirmed in S3, several rows per
   listing, tolerating S3 visibility lag for ``visibility_grace`` seconds.

The loop never blocks the caller's thread; ``Results.wait`` waits on :class:`xasync.jobs.Job`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import random
import statistics
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from xasync import delivery
from xasync.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    XasyncError,
)
from xasync.jobs import Job, State, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOptions:
    """Tuning of the submission and polling (defaults suit the real service and the emulator).

    Parameters
    ----------
    first_poll : float
        Seconds after a create before the first status call while no duration is known yet;
        later polls grow by ``poll_growth`` up to ``max_poll_interval``.
    max_poll_interval : float
        Upper bound of the interval between two status calls of one request.
    poll_growth : float
        Factor by which the interval grows while a request keeps running.
    visibility_grace : float
        Seconds a finished request's outputs may take to become visible in S3 before the row is
        declared failed.
    ambiguous_grace : float
        Seconds to wait before probing the row's prefix after a create whose answer was lost.
    max_create_attempts : int
        Creates tried per row when answers are lost or the service errs (429s not counted).
    resubmit_failed : bool
        Buy a new request for rows whose earlier delivery holds ``error.json``.

    """

    first_poll: float = 0.25
    max_poll_interval: float = 30.0
    poll_growth: float = 1.5
    visibility_grace: float = 120.0
    ambiguous_grace: float = 1.0
    max_create_attempts: int = 5
    resubmit_failed: bool = False


@dataclass(frozen=True)
class Order:
    """One row to submit: where it is delivered and how to build its body.

    ``body`` is a callable returning the full request body (with the delivery credentials; never
    logged), called only when the row is really created; ``None`` for rows that are only followed
    (re-attached).
    """

    index: int
    token: str
    row_url: str
    identifiers: tuple[str, ...]
    body: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)


class _Account:
    """Per-account concurrency slots and the learned processing time (lives in the loop).

    ``in_flight`` counts slots taken (creates under way + requests running); ``running`` only the
    requests the service confirmed (accepted, not yet seen finished). When K is not configured it
    is learned: a 429 means the account allows no more than what is confirmed running, and every
    acceptance proves it allows at least that many.
    """

    def __init__(self, limit: int | None) -> None:
        self.learning = limit is None
        self.cap = limit if limit is not None else 64
        self.in_flight = 0
        self.running = 0
        self.not_before = 0.0
        self.durations: deque[float] = deque(maxlen=32)
        self.cond = asyncio.Condition()

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

    async def release(self, *, finished: bool = False) -> None:
        """Free a slot; ``finished=True`` when it held a request that ran (and ended)."""
        async with self.cond:
            self.in_flight = max(0, self.in_flight - 1)
            if finished:
                self.running = max(0, self.running - 1)
            self.cond.notify_all()

    def rate_limited(self, retry_after: float | None) -> float:
        loop = asyncio.get_running_loop()
        if self.learning:
            # the service refused while these were running: that is all the account allows
            self.cap = max(1, min(self.cap, self.running))
        wait = (retry_after if retry_after is not None else 1.0) * (1 + random.random() * 0.25)
        self.not_before = max(self.not_before, loop.time() + wait)
        return wait

    def expected(self, opts: SubmitOptions) -> float | None:
        if not self.durations:
            return None
        return 0.95 * statistics.median(self.durations)


class Submitter:
    """The process-wide submission loop (use :func:`get_submitter`)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._accounts: dict[tuple, _Account] = {}
        # per Client object (weak: a collected client's connections and secret go with it)
        self._apis: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Future] = set()

    # -- thread and loop ---------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="xasync-submitter", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is in flight and stop the loop thread (at interpreter exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for api in list(self._apis.values()):
                with contextlib.suppress(Exception):
                    await api.aclose()
            self._apis.clear()
            self._accounts.clear()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        with contextlib.suppress(Exception):
            loop.close()

    # -- public ------------------------------------------------------------------------------
    def submit(
        self,
        job: Job,
        orders: Sequence[Order],
        *,
        client: Any | None,
        fs: Any,
        options: SubmitOptions | None = None,
        probe: bool = True,
    ) -> None:
        """Start tracking ``job``: probe, create what is missing, follow to the end.

        With ``client=None`` nothing is created; rows are followed through S3 only (re-attach).
        """
        loop = self._ensure_loop()
        opts = options or SubmitOptions()
        fut = asyncio.run_coroutine_threadsafe(
            self._run_job(job, list(orders), client, fs, opts, probe),
            loop,
        )
        self._tasks.add(fut)
        fut.add_done_callback(self._tasks.discard)

    # -- inside the loop ---------------------------------------------------------------------
    def _account(self, client: Any) -> _Account:
        cfg = client.config
        key = (cfg.base_url, cfg.client_id)
        acc = self._accounts.get(key)
        if acc is None:
            acc = self._accounts[key] = _Account(cfg.concurrency)
        return acc

    def _api(self, client: Any) -> Any:
        api = self._apis.get(client)
        if api is None:
            api = self._apis[client] = client.async_api()
            loop = asyncio.get_running_loop()
            weakref.finalize(client, _close_later, loop, api)
        return api

    async def _run_job(
        self,
        job: Job,
        orders: list[Order],
        client: Any | None,
        fs: Any,
        opts: SubmitOptions,
        probe: bool,
    ) -> None:
        for order in orders:  # followed here from now on: local readers wait for our word
            delivery.mark_delivered(order.row_url, delivery.RowDelivery("pending"))
        try:
            run = _JobRun(job, orders, client, fs, opts, self)
            await run.run(probe)
        except asyncio.CancelledError:
            self._unfollow(orders)
            raise
        except BaseException as exc:  # a bug or a dead loop must not leave waiters hanging
            logger.exception("xasync submitter stopped on an unexpected error")
            self._unfollow(orders)
            job.abort(exc)

    @staticmethod
    def _unfollow(orders: list[Order]) -> None:
        """Rows no longer followed here: local readers fall back to polling S3."""
        for order in orders:
            current = delivery.lookup(order.row_url)
            if current is not None and not current.is_final:
                delivery.forget(order.row_url)


class _JobRun:
    """The coroutines that take the rows of one job to a final state."""

    def __init__(
        self,
        job: Job,
        orders: list[Order],
        client: Any | None,
        fs: Any,
        opts: SubmitOptions,
        submitter: Submitter,
    ) -> None:
        self.job, self.orders, self.client, self.fs, self.opts = job, orders, client, fs, opts
        self.account = submitter._account(client) if client is not None else None
        self.api = submitter._api(client) if client is not None else None
        keys = sum(len(o.identifiers) + 2 for o in orders)  # outputs + request copy + manifest
        self.confirmer = _Confirmer(fs, opts, listing_pages=max(1, -(-keys // 1000)))

    async def run(self, probe: bool) -> None:
        confirm_task = asyncio.create_task(self.confirmer.run())
        try:
            found: dict[str, delivery.RowDelivery] = {}
            if probe and self.orders:
                found = await asyncio.to_thread(
                    delivery.probe_rows,
                    self.fs,
                    {o.row_url: o.identifiers for o in self.orders},
                )
            tasks = [asyncio.create_task(self._row(o, found.get(o.row_url))) for o in self.orders]
            await asyncio.gather(*tasks)
        finally:
            confirm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await confirm_task

    # -- one row -----------------------------------------------------------------------------
    async def _row(self, order: Order, found: delivery.RowDelivery | None) -> None:
        try:
            reuse = found is not None and (
                found.state == "done" or (found.state == "failed" and not self.opts.resubmit_failed)
            )
            if reuse:
                self._finish(order, found, reused=True)
                return
            if found is not None and found.state == "pending" and found.request_id:
                logger.info(
                    "row %s: attaching to running request %s", order.index, found.request_id
                )
                self.job.update(order.index, state=State.RUNNING, request_id=found.request_id)
                if self.account is not None:
                    self.account.take()
                await self._follow(order, found.request_id, holding_slot=self.account is not None)
                return
            if self.client is None or order.body is None:
                # re-attached: nothing to create, S3 is the only witness
                if found is None or found.state == "none":
                    self._fail(
                        order, "nothing was delivered at this prefix and no client was given"
                    )
                    return
                await self._settle(order, found.request_id, since_finished=False)
                return
            known = set(found.request_ids) if found is not None else set()
            await self._create_and_follow(order, known)
        except asyncio.CancelledError:
            raise
        except XasyncError as exc:
            self._fail(order, str(exc))

    async def _create_and_follow(self, order: Order, known_ids: set[str]) -> None:
        assert self.account is not None and self.api is not None
        attempts = 0
        while True:
            if not await self.account.acquire(self.job.is_cancelled):
                self._fail(order, "cancelled before it was submitted (nothing was bought)")
                return
            try:
                request_id = await self.api.create(order.body())
            except RateLimited as exc:
                # learn while this attempt still counts as in flight, then free its slot
                wait = self.account.rate_limited(exc.retry_after)
                await self.account.release()
                logger.debug("row %s: 429, retrying in %.2f s", order.index, wait)
                await asyncio.sleep(wait)
                continue
            except (BadRequest, Unauthorized, Forbidden, AuthError) as exc:
                await self.account.release()
                self._fail(order, str(exc))
                return
            except (ServerError, TransportError, ApiError) as exc:
                attempts += 1
                maybe_sent = not isinstance(exc, TransportError) or exc.maybe_sent
                request_id = None
                if maybe_sent:
                    request_id = await self._find_appeared(order, known_ids)
                if request_id is None:
                    await self.account.release()
                    if attempts >= self.opts.max_create_attempts:
                        self._fail(order, f"could not create the request: {exc}")
                        return
                    await asyncio.sleep(min(30.0, 0.5 * 2**attempts) * (0.5 + random.random()))
                    continue
                logger.info("row %s: the lost create was accepted as %s", order.index, request_id)
            self.account.started()
            self.job.update(
                order.index,
                state=State.SUBMITTED,
                request_id=request_id,
                submitted=utcnow(),
                creates=self.job.rows[order.index].creates + 1,
            )
            await self._follow(order, request_id, holding_slot=True)
            return

    async def _find_appeared(self, order: Order, known_ids: set[str]) -> str | None:
        """After a lost create answer: did the service accept it anyway?"""
        await asyncio.sleep(self.opts.ambiguous_grace)
        row = await asyncio.to_thread(delivery.probe_row, self.fs, order.row_url, order.identifiers)
        new = [rid for rid in row.request_ids if rid not in known_ids]
        return new[-1] if new else None

    async def _follow(self, order: Order, request_id: str, *, holding_slot: bool) -> None:
        """Poll status until the 404 that ends the request, free the slot, confirm in S3."""
        assert self.api is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        expected = self.account.expected(self.opts) if self.account else None
        delay = expected if expected is not None else self.opts.first_poll
        step = max(0.02, 0.05 * expected) if expected is not None else self.opts.first_poll
        try:
            while True:
                await asyncio.sleep(max(0.0, start + delay - loop.time()))
                try:
                    running = await self.api.status(request_id)
                except (Unauthorized, Forbidden, AuthError):
                    raise
                except XasyncError as exc:
                    logger.warning("row %s: status failed (%s); checking S3", order.index, exc)
                    row = await asyncio.to_thread(
                        delivery.probe_row,
                        self.fs,
                        order.row_url,
                        order.identifiers,
                    )
                    if row.state in ("done", "failed"):
                        running = False
                    else:
                        running = True
                if not running:
                    break
                if self.job.rows[order.index].state is not State.RUNNING:
                    self.job.update(order.index, state=State.RUNNING)
                delay = (loop.time() - start) + step
                step = min(self.opts.max_poll_interval, step * self.opts.poll_growth)
        finally:
            if holding_slot and self.account is not None:
                await self.account.release(finished=True)
        if self.account is not None:
            self.account.durations.append(loop.time() - start)
        await self._settle(order, request_id, since_finished=True)

    async def _settle(self, order: Order, request_id: str | None, *, since_finished: bool) -> None:
        grace = self.opts.visibility_grace if since_finished else None
        row = await self.confirmer.confirm(order, request_id, grace)
        if row is None:
            self._fail(
                order,
                f"request {request_id} finished but neither outputs nor error.json appeared at "
                f"{order.row_url} within {self.opts.visibility_grace:g} s",
            )
            return
        self._finish(order, row, reused=False)

    # -- outcomes ----------------------------------------------------------------------------
    def _finish(self, order: Order, row: delivery.RowDelivery, *, reused: bool) -> None:
        delivery.mark_delivered(order.row_url, row)
        state = State.DONE if row.state == "done" else State.FAILED
        self.job.update(
            order.index,
            state=state,
            request_id=row.request_id,
            finished=utcnow(),
            cost_pu=0.0 if reused and state is State.DONE else row.cost,
            error=row.error,
            reused=reused,
        )
        if state is State.FAILED:
            logger.info("row %s failed: %s", order.index, row.error)

    def _fail(self, order: Order, message: str) -> None:
        logger.info("row %s failed: %s", order.index, message)
        # computing this row must raise at once, not wait for a delivery that cannot come
        delivery.mark_delivered(order.row_url, delivery.RowDelivery("failed", error=message))
        self.job.update(order.index, state=State.FAILED, finished=utcnow(), error=message)


class _Confirmer:
    """Confirms finished requests in S3, several rows per listing."""

    def __init__(self, fs: Any, opts: SubmitOptions, *, listing_pages: int = 1) -> None:
        self.fs, self.opts = fs, opts
        # a listing of the whole delivery root costs about this many LIST pages; fewer waiting
        # rows are cheaper to probe one prefix each
        self.listing_pages = listing_pages
        self.waiting: dict[str, tuple[Order, str | None, float, asyncio.Future]] = {}  # by row url
        self.wake = asyncio.Event()

    async def confirm(
        self,
        order: Order,
        request_id: str | None,
        grace: float | None,
    ) -> delivery.RowDelivery | None:
        """Wait until the row's outcome is in S3; ``None`` after ``grace`` seconds without it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        deadline = float("inf") if grace is None else loop.time() + grace
        self.waiting[order.row_url] = (order, request_id, deadline, fut)
        self.wake.set()
        return await fut

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        batch_window = 0.1  # rows finishing together (one round of K) share one listing
        pause = batch_window
        while True:
            if not self.waiting:
                await self.wake.wait()
                pause = batch_window
            self.wake.clear()
            await asyncio.sleep(pause)
            batch = dict(self.waiting)
            try:
                rows = await self._probe(batch)
            except Exception as exc:  # S3 hiccup: try again later, never mark anything failed
                logger.warning("S3 probe failed (%s); retrying", exc)
                rows = {}
            resolved = 0
            now = loop.time()
            for url, (_order, request_id, deadline, fut) in batch.items():
                row = rows.get(url)
                ours = row is not None and (
                    row.state == "done"
                    or (row.state == "failed" and request_id in (None, row.request_id))
                )
                if ours:
                    fut.set_result(row)
                    del self.waiting[url]
                    resolved += 1
                    continue
                if now > deadline:
                    fut.set_result(None)
                    del self.waiting[url]
            pause = batch_window if resolved else min(5.0, pause * 2)

    async def _probe(self, batch: dict) -> dict[str, delivery.RowDelivery]:
        if len(batch) <= self.listing_pages:
            results = await asyncio.gather(
                *(
                    asyncio.to_thread(delivery.probe_row, self.fs, url, order.identifiers)
                    for url, (order, *_rest) in batch.items()
                ),
            )
            return dict(zip(batch, results))
        return await asyncio.to_thread(
            delivery.probe_rows,
            self.fs,
            {url: o.identifiers for url, (o, *_r) in batch.items()},
        )


def _close_later(loop: asyncio.AbstractEventLoop, api: Any) -> None:
    """Close a collected client's AsyncApi on the submitter loop (if it still runs)."""
    if loop.is_closed() or not loop.is_running():
        return
    with contextlib.suppress(RuntimeError):
        asyncio.run_coroutine_threadsafe(api.aclose(), loop)


_SUBMITTER: Submitter | None = None
_SUBMITTER_LOCK = threading.Lock()


def get_submitter() -> Submitter:
    """The process-wide :class:`Submitter` (its thread starts on first use)."""
    global _SUBMITTER
    with _SUBMITTER_LOCK:
        if _SUBMITTER is None:
            _SUBMITTER = Submitter()
            atexit.register(_SUBMITTER.close)
        return _SUBMITTER
