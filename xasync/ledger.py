"""The one store of request outcomes in this process, keyed by request URL.

A request URL is a row's ``row_url`` (``<delivery root>/<token[:24]>``): several rows (of one
call or of several calls) that buy the same thing share it, and so share one entry here. The
submitter writes entries; ``Results``/``status()`` (through :class:`xasync.jobs.Job`) and the lazy
await tasks of this process (:func:`xasync.awaiting.await_delivery`) read them. Nothing here is
pickled into a graph: on a dask worker the ledger is simply empty and the worker asks S3.

Life cycle of an entry::

    queued -> claimed -> running -> done | failed

``queued``: someone in this process follows the request and has not created it yet; ``claimed``:
a create is under way (or was claimed in S3); ``running``: the service accepted it (``request_id``
known); ``done``/``failed`` are final. One follower per URL at a time: :meth:`Ledger.follow`
hands the URL to the first caller, every later caller attaches (waits on the entry).
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

__all__ = ["LEDGER", "Entry", "Ledger", "Stage", "utcnow"]


class Stage(str, enum.Enum):
    """Life cycle of one request."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """``True`` for ``done`` and ``failed``."""
        return self in (Stage.DONE, Stage.FAILED)

    def __str__(self) -> str:
        return self.value


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Entry:
    """What this process knows about one request (one request URL).

    Attributes
    ----------
    url : str
        The request URL (``row_url``).
    stage : Stage
        Where the request is in its life cycle.
    request_id : str or None
        The service's id, once known.
    cost : float or None
        Processing units charged, from the request copy.
    error : str or None
        Why it failed.
    outputs : dict
        ``{identifier: url}`` of a done request.
    bought_by : int or None
        Id of the :class:`~xasync.jobs.Job` whose follower created it (None: found in S3).
    follower : int or None
        Id of the job that follows the request now (None once final).
    submitted, finished : datetime or None
        When it was created / seen final.
    creates : int
        Creates sent for it by this process.
    local_to : int or None
        For a failure that bought nothing because one job stopped (cancelled, outage): that
        job. Other jobs see the request as not started and may buy it.

    """

    url: str
    stage: Stage = Stage.QUEUED
    request_id: str | None = None
    cost: float | None = None
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict, hash=False)
    bought_by: int | None = None
    follower: int | None = None
    submitted: datetime | None = None
    finished: datetime | None = None
    creates: int = 0
    local_to: int | None = None

    @property
    def is_final(self) -> bool:
        """``True`` when done or failed."""
        return self.stage.is_final

    @property
    def bought_nothing(self) -> bool:
        """A final failure before anything was paid (cancelled, create refused or unreachable)."""
        return self.stage is Stage.FAILED and self.request_id is None


class Ledger:
    """Thread-safe store of :class:`Entry` by request URL, with one condition to wait on."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self.cond = threading.Condition()
        self._ids = itertools.count(1)

    def new_id(self) -> int:
        """A fresh follower id (one per job)."""
        return next(self._ids)

    def get(self, url: str) -> Entry | None:
        """The entry of ``url``, or None."""
        with self.cond:
            return self._entries.get(url)

    def entries(self, urls: Iterable[str]) -> list[Entry | None]:
        """A consistent snapshot of several entries."""
        with self.cond:
            return [self._entries.get(u) for u in urls]

    def follow(self, url: str, follower: int, *, restart: bool = False) -> bool:
        """Become the one follower of ``url``; ``False`` when another follower has it.

        A final entry is replaced only with ``restart`` (the decision saw that S3 disagrees, or
        a failure is to be bought again) or when it bought nothing (cancelled, refused).
        """
        with self.cond:
            following, changed = self._follow_locked(url, follower, restart)
            if changed:
                self.cond.notify_all()
            return following

    def follow_many(self, urls: Iterable[tuple[str, bool]], follower: int) -> list[bool]:
        """:meth:`follow` for several ``(url, restart)`` under one lock, with one notification
        (the decisions of a whole job at its start); one answer per URL, in order."""
        answers: list[bool] = []
        any_change = False
        with self.cond:
            entries = self._entries
            for url, restart in urls:
                if url not in entries:  # the common case, inline (a new job's 100,000 rows)
                    entries[url] = Entry(url, follower=follower)
                    answers.append(True)
                    any_change = True
                    continue
                following, changed = self._follow_locked(url, follower, restart)
                answers.append(following)
                any_change = any_change or changed
            if any_change:
                self.cond.notify_all()
        return answers

    def end_unbought(
        self, urls: Iterable[tuple[str, bool]], follower: int, error: str
    ) -> list[str]:
        """End each ``(url, restart)`` failed for ``follower``, which stopped before buying it
        (a job cancelled before it started): :meth:`follow` then :meth:`update` with
        ``local_to=follower``, one fresh entry per URL, under one lock, one notification.
        Returns the URLs ``follower`` may not follow (another follower has them, or an outcome
        stands): the caller attaches to those."""
        refused: list[str] = []
        now = utcnow()
        with self.cond:
            entries = self._entries
            for url, restart in urls:
                old = entries.get(url)
                if not _may_follow(old, follower, restart):
                    refused.append(url)
                elif old is not None and not old.is_final and old.follower == follower:
                    entries[url] = replace(
                        old, stage=Stage.FAILED, error=error, local_to=follower,
                        follower=None, finished=now,
                    )  # fmt: skip
                else:
                    entries[url] = Entry(
                        url, Stage.FAILED, error=error, finished=now, local_to=follower
                    )
            self.cond.notify_all()
        return refused

    def _follow_locked(self, url: str, follower: int, restart: bool) -> tuple[bool, bool]:
        """(``follower`` follows ``url``, the entry changed); the lock is held."""
        old = self._entries.get(url)
        if not _may_follow(old, follower, restart):
            return False, False
        if old is None or old.is_final or old.follower is None:
            self._entries[url] = Entry(url, follower=follower)
            return True, True
        return True, False

    def update(self, url: str, **changes: Any) -> Entry:
        """Change fields of ``url``'s entry (created if absent); a final entry stays final."""
        with self.cond:
            old = self._entries.get(url) or Entry(url)
            stage = changes.get("stage", old.stage)
            if old.is_final and stage is not old.stage:
                return old
            new = replace(old, **changes)
            if new.is_final:
                new = replace(new, follower=None, finished=new.finished or utcnow())
            self._entries[url] = new
            self.cond.notify_all()
            return new

    def update_many(self, urls: Iterable[str], **changes: Any) -> int:
        """:meth:`update` for several URLs under one lock, with one notification (a cancelled
        job's queued rows); returns how many entries changed."""
        changed = 0
        stage = changes.get("stage")
        final = stage is not None and stage.is_final
        now = utcnow()
        with self.cond:
            for url in urls:
                old = self._entries.get(url) or Entry(url)
                if old.is_final and changes.get("stage", old.stage) is not old.stage:
                    continue
                if final:  # one new entry each (a cancelled job's 100,000 queued rows)
                    done = {"follower": None, "finished": old.finished or now}
                    new = Entry(**{**old.__dict__, **changes, **done})
                else:
                    new = replace(old, **changes)
                    if new.is_final:
                        new = replace(new, follower=None, finished=new.finished or now)
                self._entries[url] = new
                changed += 1
            if changed:
                self.cond.notify_all()
        return changed

    def record(self, url: str, entry: Entry) -> None:
        """Put a whole entry (tests, benchmarks: an outcome known without a submitter)."""
        with self.cond:
            self._entries[url] = replace(entry, url=url)
            self.cond.notify_all()

    def abandon(self, url: str, follower: int) -> None:
        """``follower`` stops following ``url`` without an outcome: readers fall back to S3."""
        with self.cond:
            old = self._entries.get(url)
            if old is not None and not old.is_final and old.follower == follower:
                del self._entries[url]
                self.cond.notify_all()

    def wait(self, url: str, timeout: float | None) -> Entry | None:
        """Block until ``url``'s entry is final or gone (or ``timeout``); return it."""

        def settled() -> bool:
            entry = self._entries.get(url)
            return entry is None or entry.is_final

        with self.cond:
            self.cond.wait_for(settled, timeout)
            return self._entries.get(url)

    def forget(self, url: str) -> None:
        """Drop what is known of ``url``."""
        with self.cond:
            self._entries.pop(url, None)
            self.cond.notify_all()

    def clear(self) -> None:
        """Forget everything (tests, long sessions)."""
        with self.cond:
            self._entries.clear()
            self.cond.notify_all()


def _may_follow(old: Entry | None, follower: int, restart: bool) -> bool:
    """Whether ``follower`` may follow a request whose entry is ``old`` (see
    :meth:`Ledger.follow`)."""
    if old is None:
        return True
    if not old.is_final:
        return old.follower in (None, follower)
    return restart or old.bought_nothing


#: The process-wide ledger.
LEDGER = Ledger()
