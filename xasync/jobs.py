"""The rows of one call as seen through the ledger: what ``Results`` shows and waits on.

A :class:`Job` is what one ``process`` call (or one ``open_delivery``) tracks. It stores no
outcome itself: each row points at a request URL and its state, request id and cost are read
from :data:`xasync.ledger.LEDGER` (the one store of request outcomes). Several rows may use one
request (they buy the same thing): the request's cost is then split among them (``cost_pu`` is
each row's share, so the column sums to what was charged) and counted once in
:meth:`Job.total_cost`.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xasync.ledger import LEDGER, Entry, Ledger, Stage, utcnow

__all__ = ["Job", "RowStatus", "State", "utcnow"]

#: Row states are the ledger's stages.
State = Stage


@dataclass(frozen=True)
class RowStatus:
    """What is known about one row's request at one moment.

    ``cost_pu`` is the row's share of what its request was charged in this call (0.0 for a
    request reused from an earlier call, unless the job reports delivered costs); ``requests``
    names the request(s) the row uses.
    """

    token: str
    row_url: str
    label: Any = None
    state: State = State.QUEUED
    request_id: str | None = None
    submitted: datetime | None = None
    finished: datetime | None = None
    cost_pu: float | None = None
    error: str | None = None
    reused: bool = False
    creates: int = 0

    @property
    def requests(self) -> tuple[str, ...]:
        """The request ids this row uses (one, or none yet)."""
        return (self.request_id,) if self.request_id else ()


@dataclass(frozen=True)
class _Row:
    token: str
    row_url: str
    label: Any = None


class Job:
    """The rows of one call; their states come from the ledger. Thread-safe.

    Parameters
    ----------
    rows : sequence of RowStatus or (token, row_url, label)
        The rows, in order.
    charge_reused : bool
        Report the delivered cost of requests this job did not buy (re-attaching) instead of 0.
    ledger : Ledger, optional
        The store to read (default: the process-wide one).

    """

    def __init__(
        self,
        rows: Sequence[Any],
        *,
        charge_reused: bool = False,
        ledger: Ledger | None = None,
    ) -> None:
        # three columns rather than one object per row (100,000 rows: a tenth of a second)
        self._tokens = [r.token for r in rows]
        self._urls = [r.row_url for r in rows]
        self._labels = [r.label for r in rows]
        self.ledger = ledger or LEDGER
        self.id = self.ledger.new_id()
        self.charge_reused = charge_reused
        self._fatal: BaseException | None = None
        self._cancelled = threading.Event()
        self._undecided: set[str] = set()  # urls the submitter has not looked at yet
        shares = Counter(self._urls)
        self._share = {url: n for url, n in shares.items()}

    @classmethod
    def from_rows(cls, rows: Sequence[Any], **kwargs: Any) -> Job:
        """Build a job from its rows (anything with ``token``, ``row_url``, ``label``)."""
        return cls(list(rows), **kwargs)

    @functools.cached_property
    def _rows(self) -> list[_Row]:
        """One object per row, built when first needed (by a subclass)."""
        return list(map(_Row, self._tokens, self._urls, self._labels))

    def __len__(self) -> int:
        return len(self._urls)

    @property
    def urls(self) -> list[str]:
        """The request URL of each row, in row order."""
        return list(self._urls)

    @property
    def rows(self) -> list[RowStatus]:
        """The rows' current states (same as :meth:`snapshot`)."""
        return self.snapshot()

    def expect_submission(self) -> None:
        """Show every row ``queued`` until the submitter decided about its request.

        (Without it, an outcome left in the ledger by an earlier call, e.g. a failure that
        bought nothing, would show before this call's submitter decides to buy it.)
        """
        with self.ledger.cond:
            self._undecided = set(self.urls)

    def decided(self, url: str) -> None:
        """The submitter looked at ``url``: its ledger entry now speaks for this job."""
        with self.ledger.cond:
            self._undecided.discard(url)
            self.ledger.cond.notify_all()

    def decided_many(self, urls: Iterable[str]) -> None:
        """:meth:`decided` for several URLs, with one notification."""
        with self.ledger.cond:
            self._undecided.difference_update(urls)
            self.ledger.cond.notify_all()

    def row(self, index: int) -> RowStatus:
        """The current state of row ``index`` (cheaper than a whole snapshot)."""
        row = _Row(self._tokens[index], self._urls[index], self._labels[index])
        with self.ledger.cond:
            entry = self.ledger.get(row.row_url)
        return self._status(row, entry)

    def snapshot(self) -> list[RowStatus]:
        """A consistent copy of every row's status."""
        with self.ledger.cond:
            entries = self.ledger.entries(self._urls)
        rows = map(_Row, self._tokens, self._urls, self._labels)
        return [self._status(row, entry) for row, entry in zip(rows, entries)]

    def _status(self, row: _Row, entry: Entry | None) -> RowStatus:
        base = RowStatus(row.token, row.row_url, row.label)
        if entry is None or row.row_url in self._undecided:
            return base
        if entry.local_to not in (None, self.id):  # another call stopped: not ours
            return base
        charged = self._charged(entry)
        cost = None
        if entry.cost is not None and entry.stage is Stage.DONE:
            cost = entry.cost / self._share[row.row_url] if charged else 0.0
        elif entry.stage is Stage.FAILED and entry.cost is not None and charged:
            cost = entry.cost / self._share[row.row_url]
        return RowStatus(
            row.token,
            row.row_url,
            row.label,
            state=entry.stage,
            request_id=entry.request_id,
            submitted=entry.submitted,
            finished=entry.finished,
            cost_pu=cost,
            error=entry.error,
            reused=entry.is_final and entry.bought_by != self.id,
            creates=entry.creates if entry.bought_by == self.id else 0,
        )

    def _charged(self, entry: Entry) -> bool:
        return entry.bought_by == self.id or self.charge_reused

    def total_cost(self) -> float:
        """Processing units charged for this job's requests, each request counted once."""
        seen: dict[str, float] = {}
        for status in self.snapshot():
            if status.cost_pu:
                seen[status.row_url] = seen.get(status.row_url, 0.0) + status.cost_pu
        return float(sum(seen.values()))

    def counts(self) -> Counter:
        """How many rows are in each state."""
        return Counter(r.state.value for r in self.snapshot())

    @property
    def finished(self) -> bool:
        """``True`` once every row is done or failed (or the submission stopped on an error)."""
        return self._all_final()

    def cancel(self) -> None:
        """Ask the submitter not to create the rows still queued (submitted ones go on)."""
        self._cancelled.set()

    def is_cancelled(self) -> bool:
        """``True`` once :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def abort(self, error: BaseException) -> None:
        """Record an error that stopped the submission; waiters wake up and re-raise it."""
        with self.ledger.cond:
            self._fatal = error
            self.ledger.cond.notify_all()

    @property
    def fatal(self) -> BaseException | None:
        """The error that stopped the submission, if any."""
        return self._fatal

    def wait_change(self, timeout: float | None) -> bool:
        """Block until a change or ``timeout`` seconds; ``True`` if every row is final."""
        with self.ledger.cond:
            if not self._all_final():
                self.ledger.cond.wait(timeout)
            return self._all_final()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every row is final; ``False`` if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.ledger.cond:
            while not self._all_final():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.ledger.cond.wait(min(remaining, 1.0) if remaining is not None else 1.0)
            return True

    def _all_final(self) -> bool:
        if self._fatal is not None:
            return True
        return all(r.state.is_final for r in self.snapshot())
