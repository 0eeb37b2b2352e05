"""The rows of one job run waiting to be created: tasks within a window, bare URLs beyond it.

A job of 100,000 rows behind K slots would hold 100,000 tasks, each of which must wake once to
end when the job is cancelled (about 50 us of the submitter's CPU per row). Beyond a window the
rows wait as URLs (:meth:`RowQueue.defer`); a create that ends starts the next ones. A cancel
or an outage ends every waiting row at once (:meth:`RowQueue.end_all`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["RowQueue"]

T = TypeVar("T")


class RowQueue:
    """The tasks of one job run, and its rows waiting to be created (tasks or URLs)."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task] = {}
        #: Request URLs waiting for a slot while holding nothing (no slot, no claim), in the
        #: order they started waiting (the slots' FIFO order).
        self.waiting: dict[str, None] = {}
        #: Rows decided to be created, waiting as URLs (no task) beyond the window.
        self.deferred: deque[str] = deque()
        self._deferred: set[str] = set()
        #: Request URLs ended by :meth:`end_all` (their tasks, if any, were cancelled).
        self.ended: set[str] = set()
        self._live = 0  # tasks not done
        self._idle = asyncio.Event()  # set when no task is live and nothing is deferred

    def spawn(self, url: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as ``url``'s task."""
        self._live += 1
        self._idle.clear()
        task = asyncio.create_task(coro)
        self.tasks[url] = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        if not task.cancelled():
            task.exception()  # retrieved (each task records its own outcome)
        self._live -= 1
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._live and not self.deferred:
            self._idle.set()

    async def idle(self) -> None:
        """Return once every task is done and no row is deferred."""
        if self._live or self.deferred:
            await self._idle.wait()

    async def wait(self, url: str, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` (a slot, or a permit to claim early) with ``url`` in the queue."""
        self.waiting[url] = None
        try:
            return await waiting
        finally:
            self.waiting.pop(url, None)

    def defer(self, url: str) -> None:
        """``url`` is to be created later, without a task meanwhile."""
        self.deferred.append(url)
        self._deferred.add(url)

    def defer_many(self, urls: list[str]) -> None:
        """:meth:`defer` for several URLs, in order."""
        self.deferred.extend(urls)
        self._deferred.update(urls)

    def is_deferred(self, url: str) -> bool:
        """Whether ``url`` waits as a URL."""
        return url in self._deferred

    def next_deferred(self, room: int) -> list[str]:
        """Up to ``room`` deferred URLs, in order, to start now."""
        urls: list[str] = []
        while self.deferred and len(urls) < room:
            url = self.deferred.popleft()
            self._deferred.discard(url)
            urls.append(url)
        return urls

    def end_all(self) -> tuple[list[str], list[str]]:
        """End every waiting row: ``(tasks' URLs, deferred URLs)``; the tasks are cancelled
        (in FIFO order, so each leaves the front of the slots' queue)."""
        waiting, deferred = list(self.waiting), list(self.deferred)
        self.waiting.clear()
        self.deferred.clear()
        self._deferred.clear()
        self.ended.update(waiting)
        self.ended.update(deferred)
        me = asyncio.current_task()
        for url in waiting:
            task = self.tasks.get(url)
            if task is not None and task is not me and not task.done():
                task.cancel()
        self._check_idle()
        return waiting, deferred
