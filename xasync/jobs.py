"""The state of submitted rows, shared between the submitter thread and the user's thread.

A :class:`Job` is what one ``process`` call (or one ``open_delivery``) tracks: one
:class:`RowStatus` per row, guarded by one lock, with a condition variable so that
``Results.wait`` blocks without polling anything over the network.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any


class State(str, enum.Enum):
    """Life cycle of one row's request."""

    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """``True`` for ``done`` and ``failed``."""
        return self in (State.DONE, State.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RowStatus:
    """What is known about one row's request at one moment."""

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


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


@dataclass
class Job:
    """The rows of one call and their states; thread-safe.

    Parameters
    ----------
    rows : sequence of RowStatus
        Initial states, in row order.

    """

    rows: list[RowStatus]
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _listeners: list[Callable[[int, RowStatus], None]] = field(default_factory=list, repr=False)
    _fatal: BaseException | None = field(default=None, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_rows(cls, rows: Sequence[RowStatus]) -> Job:
        """Build a job from its initial row states."""
        return cls(rows=list(rows))

    def __len__(self) -> int:
        return len(self.rows)

    def snapshot(self) -> list[RowStatus]:
        """A consistent copy of every row's status."""
        with self._cond:
            return list(self.rows)

    def counts(self) -> Counter:
        """How many rows are in each state."""
        with self._cond:
            return Counter(r.state.value for r in self.rows)

    @property
    def finished(self) -> bool:
        """``True`` once every row is done or failed (or the submitter died)."""
        with self._cond:
            return self._fatal is not None or all(r.state.is_final for r in self.rows)

    def update(self, index: int, **changes: Any) -> RowStatus:
        """Change fields of row ``index``; final states are never left."""
        with self._cond:
            old = self.rows[index]
            new_state = changes.get("state", old.state)
            # a row that finished stays finished, except a failed row re-bought on purpose
            rebuy = old.state is State.FAILED and new_state is State.QUEUED
            if old.state.is_final and new_state != old.state and not rebuy:
                return old
            new = replace(old, **changes)
            self.rows[index] = new
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            listener(index, new)
        return new

    def add_listener(self, listener: Callable[[int, RowStatus], None]) -> None:
        """Call ``listener(index, status)`` after each change (from the submitter thread)."""
        with self._cond:
            self._listeners.append(listener)

    def cancel(self) -> None:
        """Ask the submitter not to create the rows still queued (submitted ones go on)."""
        self._cancelled.set()

    def is_cancelled(self) -> bool:
        """``True`` once :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def abort(self, error: BaseException) -> None:
        """Record an error that stopped the submitter; waiters wake up and re-raise it."""
        with self._cond:
            self._fatal = error
            self._cond.notify_all()

    @property
    def fatal(self) -> BaseException | None:
        """The error that stopped the submission, if any."""
        return self._fatal

    def wait_change(self, timeout: float | None) -> bool:
        """Block until a change or ``timeout`` seconds; ``True`` if every row is final."""
        with self._cond:
            if not self._all_final():
                self._cond.wait(timeout)
            return self._all_final()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every row is final; ``False`` if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._all_final():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    def _all_final(self) -> bool:
        return self._fatal is not None or all(r.state.is_final for r in self.rows)
