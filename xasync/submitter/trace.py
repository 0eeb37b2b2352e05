"""Trace events of the submission loop, as DEBUG log records (for the throughput benchmark).

Each event is one DEBUG record of the ``xasync.submitter.trace`` logger whose ``xasync_trace``
attribute is ``(event, key, value)``: ``key`` is the request URL (``slot``, ``create_sent``,
``created``, ``confirmed``) or the request id (``status``, ``released``); ``value`` is the
request id of ``created`` and the answer of ``status`` (True: still running), of ``status_sent`` (keyed by the
request id, right before a status call) the call's lateness on its schedule (s); ``probe`` and
``probed`` (key: the number of rows) frame each confirming listing. The record's
``created`` attribute is the wall-clock time of the event. Nothing is built while the logger is
not enabled for DEBUG.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

__all__ = ["trace"]


def trace(event: str, key: str, value: object = None) -> None:
    """Log one trace event (cheap no-op unless DEBUG is enabled for this logger)."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s %s", event, key, value, extra={"xasync_trace": (event, key, value)})
