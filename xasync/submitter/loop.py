"""The background loop: one asyncio loop in a daemon thread per process, and its lifecycle.

:class:`Submitter` owns the thread, one :class:`~xasync.submitter.slots.Account` per account
(base URL + client id) and one ``AsyncApi`` per client object (held weakly: a collected client's
connections and secret go with it). :meth:`Submitter.submit` hands a job to a
:class:`~xasync.submitter.run.JobRun` and returns at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from xasync.jobs import Job
from xasync.submitter.options import Order, SubmitOptions
from xasync.submitter.run import JobRun
from xasync.submitter.slots import Account

logger = logging.getLogger(__name__)

__all__ = ["Submitter", "get_submitter"]


class Submitter:
    """The process-wide submission loop (use :func:`get_submitter`)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._accounts: dict[tuple, Account] = {}
        self._apis: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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
        """Cancel what is in flight and stop the loop thread (registered to run at exit).

        Every task of the loop is cancelled once and may finish (its rows are recorded as not
        bought), within ``timeout`` seconds in all, so that the interpreter exits without
        "Task was destroyed but it is pending!" and without hanging on an unreachable API.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or loop.is_closed():
            return
        done = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), loop)
        with contextlib.suppress(Exception):  # a timeout, or a loop stopped meanwhile
            done.result(timeout + 1.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    async def _shutdown(self, timeout: float) -> None:
        """Cancel every other task of the loop once, wait (bounded) until they ended, then close
        the clients' connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        left = await _cancel_all(deadline)
        if left:
            logger.warning("xasync: %d background tasks did not end at exit", left)
        for api in list(self._apis.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(api.aclose(), max(0.1, deadline - loop.time()))
        self._apis.clear()
        self._accounts.clear()

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
        job.expect_submission()
        asyncio.run_coroutine_threadsafe(
            self._run_job(job, list(orders), client, fs, opts, probe), loop
        )

    # -- inside the loop ---------------------------------------------------------------------
    def account(self, client: Any) -> Account:
        """The slots of ``client``'s account."""
        cfg = client.config
        key = (cfg.base_url, cfg.client_id)
        acc = self._accounts.get(key)
        if acc is None:
            acc = self._accounts[key] = Account(cfg.concurrency)
        return acc

    def api(self, client: Any) -> Any:
        """The ``AsyncApi`` of ``client`` on this loop."""
        api = self._apis.get(client)
        if api is None:
            api = self._apis[client] = client.async_api()
            weakref.finalize(client, _close_later, asyncio.get_running_loop(), api)
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
        run = JobRun(job, orders, client, fs, opts, self)
        try:
            await run.run(probe)
        except asyncio.CancelledError:
            for url in run.groups:
                job.ledger.abandon(url, job.id)
            raise
        except BaseException as exc:  # a bug or a dead loop must not leave waiters hanging
            logger.exception("xasync submitter stopped on an unexpected error")
            for url in run.groups:
                job.ledger.abandon(url, job.id)
            job.abort(exc)


async def _cancel_all(deadline: float, grace: float = 1.0) -> int:
    """Cancel the loop's other tasks (also those they start while ending) and wait for them
    until the loop time ``deadline``; return how many are still pending then.

    Each task is cancelled once, and a task already being cancelled (a cancelled job's queued
    rows) only if it is still pending ``grace`` seconds later: a second cancel can interrupt
    clean-up under way, e.g. a cancelled ``asyncio.wait_for`` (3.11) waiting for its inner
    task, which then takes a lock back that nobody releases.
    """
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    patient_until = loop.time() + grace
    cancelled: set[asyncio.Task] = set()
    while True:
        tasks = {task for task in asyncio.all_tasks() if task is not me}
        now = loop.time()
        if not tasks or now >= deadline:
            return len(tasks)
        for task in tasks - cancelled:
            if not task.cancelling() or now >= patient_until:
                task.cancel()
                cancelled.add(task)
        wake = deadline if now >= patient_until else min(deadline, patient_until)
        await asyncio.wait(tasks, timeout=max(0.0, wake - now))


def _close_later(loop: asyncio.AbstractEventLoop, api: Any) -> None:
    """Close a collected client's AsyncApi on the submitter loop (if it still runs)."""
    if loop.is_closed() or not loop.is_running():
        return
    with contextlib.suppress(RuntimeError):
        asyncio.run_coroutine_threadsafe(api.aclose(), loop)


def _close_at_exit(submitter: Submitter) -> None:
    """Close ``submitter`` at exit BEFORE the worker threads of ``asyncio.to_thread`` are joined
    (``threading._register_atexit``, the hook ``concurrent.futures`` itself uses): its cancelled
    tasks then queue no more S3 calls there, and the calls queued and not started are dropped.
    Closed later (``atexit``), an exit with S3 out of reach waited for every queued call and
    its retries (65 s with 300 rows). ``atexit`` stays as the fallback (closing twice is a
    no-op)."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
            register(submitter.close)
    atexit.register(submitter.close)


_SUBMITTER: Submitter | None = None
_SUBMITTER_LOCK = threading.Lock()


def get_submitter() -> Submitter:
    """The process-wide :class:`Submitter` (its thread starts on first use)."""
    global _SUBMITTER
    with _SUBMITTER_LOCK:
        if _SUBMITTER is None:
            _SUBMITTER = Submitter()
            _close_at_exit(_SUBMITTER)
        return _SUBMITTER
