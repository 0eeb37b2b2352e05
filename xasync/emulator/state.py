"""In-memory state of the emulator: running requests per account and the counters."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_COUNTERS = (
    "token_calls",
    "tokens_issued",
    "create_calls",
    "creates",
    "status_calls",
    "rate_limited",
    "server_errors",
    "dropped",
    "dropped_after_accept",
    "bad_requests",
    "unauthorized",
    "not_found",
    "finished",
    "succeeded",
    "failed",
)

#: Accepted requests whose times ``stats["requests"]`` keeps (the most recent ones).
MAX_TIMED_REQUESTS = 10_000
#: API calls whose handler times :meth:`Registry.calls` keeps (the most recent ones).
MAX_TIMED_CALLS = 50_000


@dataclass
class RequestRecord:
    """One accepted request while the emulator knows it."""

    id: str
    account: str
    prefix: str
    generation: int
    created: float = field(default_factory=time.time)
    finished: bool = False
    ok: bool = True
    finished_at: float | None = None  # time.time() when the status turned 404

    def timing(self) -> dict[str, Any]:
        """The ``stats["requests"]`` entry of this request."""
        return {
            "id": self.id,
            "account": self.account,
            "accepted": self.created,
            "finished": self.finished_at,
            "ok": self.ok if self.finished else None,
        }


class Registry:
    """Requests, per-account running counts and counters, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        self._requests: dict[str, RequestRecord] = {}
        self._counts: Counter[str] = Counter()
        self._by_prefix: Counter[str] = Counter()
        self._max_running = 0
        self._pu_total = 0.0
        self._timed: deque[RequestRecord] = deque(maxlen=MAX_TIMED_REQUESTS)
        self._calls: deque[tuple[str, str | None, int, float, float]] = deque(
            maxlen=MAX_TIMED_CALLS
        )

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._counts[name] += n

    def timed_call(
        self, kind: str, request_id: str | None, status: int, start: float, end: float
    ) -> None:
        """Record one API call's handler time (``time.time()`` at entry and at the answer)."""
        self._calls.append((kind, request_id, status, start, end))  # deque.append: thread-safe

    def calls(self) -> list[dict[str, Any]]:
        """The recent API calls: kind, request id, HTTP status, handler entry and answer."""
        return [
            {"kind": k, "id": rid, "status": st, "start": a, "end": b}
            for k, rid, st, a, b in list(self._calls)
        ]

    def try_accept(self, record: RequestRecord, limit: int) -> bool:
        """Register ``record`` as running unless its account already runs ``limit`` requests."""
        with self._lock:
            running = sum(
                1 for r in self._requests.values() if r.account == record.account and not r.finished
            )
            if running >= limit:
                return False
            record.generation = self.generation
            self._requests[record.id] = record
            self._timed.append(record)
            self._counts["creates"] += 1
            self._by_prefix[record.prefix] += 1
            total = self._running_locked()
            self._max_running = max(self._max_running, total)
            return True

    def retract(self, request_id: str) -> None:
        """Forget a just-accepted request whose acceptance could not be completed."""
        with self._lock:
            record = self._requests.pop(request_id, None)
            if record is not None:
                if record in self._timed:
                    self._timed.remove(record)
                self._counts["creates"] -= 1
                self._by_prefix[record.prefix] -= 1

    def _running_locked(self) -> int:
        return sum(1 for r in self._requests.values() if not r.finished)

    def is_running(self, request_id: str, account: str | None = None) -> bool:
        """True while ``request_id`` is known, not finished (and, if given, ``account``'s)."""
        with self._lock:
            record = self._requests.get(request_id)
            if record is None or record.finished:
                return False
            return account is None or record.account == account

    def is_current(self, record: RequestRecord) -> bool:
        """False once :meth:`reset` forgot ``record``."""
        with self._lock:
            return record.generation == self.generation and record.id in self._requests

    def finish(self, record: RequestRecord, ok: bool, cost: float | None = None) -> None:
        """Mark ``record`` finished (its status turns 404)."""
        with self._lock:
            if record.generation != self.generation:
                return
            if record.finished:  # a late delivery failure after an early (visibility) finish
                if record.ok and not ok:
                    record.ok = False
                    self._counts["succeeded"] -= 1
                    self._counts["failed"] += 1
                return
            record.finished = True
            record.finished_at = time.time()
            record.ok = ok
            self._counts["finished"] += 1
            self._counts["succeeded" if ok else "failed"] += 1
            if cost is not None:
                self._pu_total += cost

    def snapshot(self) -> dict[str, Any]:
        """A copy of all counters."""
        with self._lock:
            out: dict[str, Any] = {name: self._counts.get(name, 0) for name in _COUNTERS}
            out["creates_by_prefix"] = {k: v for k, v in self._by_prefix.items() if v}
            out["requests_running"] = self._running_locked()
            out["max_running"] = self._max_running
            out["processing_units"] = round(self._pu_total, 6)
            out["requests"] = [r.timing() for r in self._timed]
            return out

    def reset(self) -> None:
        """Forget every request (running ones finish silently) and zero the counters."""
        with self._lock:
            self.generation += 1
            self._requests.clear()
            self._counts.clear()
            self._by_prefix.clear()
            self._timed.clear()
            self._calls.clear()
            self._max_running = 0
            self._pu_total = 0.0


class RecordFinisher:
    """The two questions a background job asks about its own record."""

    def __init__(self, registry: Registry, record: RequestRecord) -> None:
        self.registry = registry
        self.record = record

    def current(self) -> bool:
        """False once the emulator was reset (the job must then write nothing)."""
        return self.registry.is_current(self.record)

    def finish(self, ok: bool, cost: float | None = None) -> None:
        """Turn the status to 404 (idempotent)."""
        self.registry.finish(self.record, ok, cost)
