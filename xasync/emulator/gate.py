"""Hold requests RUNNING until a test releases them (no wall-clock margins in tests).

While the gate holds a request, its processing may be done (outputs rendered to temporary
files) but nothing is delivered: its folder holds only the request copy and its status answers
``RUNNING``. Releasing it lets it deliver and finish as usual.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

#: Seconds between two looks at the stop event while a request waits at the gate.
POLL_SECONDS = 0.2


class Gate:
    """Which requests are held: every one (``hold_all``) and/or some ids; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._all = False
        self._ids: set[str] = set()
        self._released: set[str] = set()
        self._waiting: set[str] = set()

    def hold(self, request_id: str | None = None) -> None:
        """Hold ``request_id`` (or, with ``None``, every request, running or future)."""
        with self._cond:
            if request_id is None:
                self._all = True
                self._released.clear()
            else:
                self._ids.add(request_id)
                self._released.discard(request_id)

    def release(self, request_id: str | None = None) -> None:
        """Release ``request_id`` (or, with ``None``, everything, and stop holding)."""
        with self._cond:
            if request_id is None:
                self._all = False
                self._ids.clear()
                self._released.clear()
            else:
                self._ids.discard(request_id)
                self._released.add(request_id)
            self._cond.notify_all()

    def is_held(self, request_id: str) -> bool:
        """Whether ``request_id`` must wait now."""
        with self._cond:
            return self._held_locked(request_id)

    def _held_locked(self, request_id: str) -> bool:
        return request_id in self._ids or (self._all and request_id not in self._released)

    def waiting(self) -> list[str]:
        """Ids of the requests whose work is done and that wait at the gate now."""
        with self._cond:
            return sorted(self._waiting)

    def wait(self, request_id: str, stop: threading.Event) -> bool:
        """Block while ``request_id`` is held; False if ``stop`` was set meanwhile."""
        with self._cond:
            if not self._held_locked(request_id):
                return not stop.is_set()
            self._waiting.add(request_id)
            try:
                while self._held_locked(request_id) and not stop.is_set():
                    self._cond.wait(POLL_SECONDS)
            finally:
                self._waiting.discard(request_id)
        return not stop.is_set()

    def reset(self) -> None:
        """Release everything (used by ``Emulator.reset``)."""
        self.release(None)
