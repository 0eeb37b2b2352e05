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
