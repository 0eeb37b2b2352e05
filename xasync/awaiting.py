"""The await task of a row's lazy Dataset: block until the row is delivered.

:func:`await_delivery` is the first task of every row's dask graph (see :mod:`xasync.lazy`). It is
a pure function of its arguments, so it runs anywhere:

* in the process whose submitter follows the request, the outcome comes from the ledger
  (:data:`xasync.ledger.LEDGER`) without any S3 call, waiting on it;
* anywhere else (a cluster worker, a re-attached session, after the follower gave up) S3 is
  polled with a growing interval.

It raises only typed errors: :class:`~xasync.errors.ProcessingError` for a failed request,
:class:`~xasync.errors.DeliveryTimeout` after ``wait_timeout`` seconds, and
:class:`~xasync.errors.TransportError` after ``MAX_PROBE_FAILURES`` failed S3 probes in a row
(never a raw botocore error).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from xasync import delivery as _delivery
from xasync.backoff import Backoff
from xasync.errors import DeliveryTimeout, ProcessingError, TransportError
from xasync.ledger import LEDGER
from xasync.reader import ReaderConfig, filesystem_for

logger = logging.getLogger(__name__)

__all__ = ["MAX_POLL_INTERVAL", "MAX_PROBE_FAILURES", "await_delivery"]

#: Longest interval between two S3 probes of one row (seconds).
MAX_POLL_INTERVAL = 60.0
#: Consecutive failed S3 probes (network errors) after which the task raises TransportError.
MAX_PROBE_FAILURES = 5
_BACKOFF = Backoff(base=0.5, cap=10.0)


def await_delivery(
    token: str,
    row_url: str,
    identifiers: tuple[str, ...],
    extension: str,
    label: Any,
    reader: ReaderConfig,
    wait_timeout: float,
    poll_interval: float,
) -> dict[str, str]:
    """Block until the row's request is delivered; return ``{identifier: url}``.

    Parameters
    ----------
    token : str
        The request's token (logs only).
    row_url : str
        The request URL (``<delivery root>/<token[:24]>``).
    identifiers : tuple of str
        The raster outputs expected.
    extension : str
        Their file extension.
    label : object
        The row label (error messages).
    reader : ReaderConfig
        How to reach S3.
    wait_timeout : float
        Seconds to wait at most.
    poll_interval : float
        First S3 polling interval (seconds); it grows 1.5x per poll up to 60 s.

    Raises
    ------
    ProcessingError, DeliveryTimeout, TransportError

    """
    deadline = time.monotonic() + wait_timeout
    interval, polls, failures = poll_interval, 0, 0
    fs = None
    while True:
        remaining = deadline - time.monotonic()
        known = LEDGER.get(row_url)
        if known is not None and not known.is_final and known.follower is not None:
            if remaining <= 0:
                raise _timeout(label, row_url, wait_timeout, polls, known.stage.value)
            LEDGER.wait(row_url, min(remaining, 5.0))  # followed here: wait for its word
            continue
        if (
            known is not None
            and known.is_final
            and (known.stage.value == "failed" or known.outputs)
        ):
            state = _delivery.RowDelivery(
                "failed" if known.stage.value == "failed" else "done",
                (),
                known.request_id,
                dict(known.outputs),
                known.error,
            )
        else:
            fs = fs or filesystem_for(row_url, reader)
            state, failures = _probe(fs, row_url, identifiers, extension, failures)
            polls += 1
        if state.state == "done":
            if all(i in state.outputs for i in identifiers):
                logger.debug("row %s delivered (%s) after %d polls", token, state.request_id, polls)
                return {i: state.outputs[i] for i in identifiers}
            LEDGER.forget(row_url)  # an outcome without our outputs: ask S3
            continue
        if state.state == "failed":
            raise ProcessingError(
                state.error or "the request failed without a message",
                request_id=state.request_id,
                row=label,
            )
        if remaining <= 0:
            raise _timeout(label, row_url, wait_timeout, polls, state.state)
        pause = _BACKOFF.delay(failures) if failures else interval
        time.sleep(min(pause, max(remaining, 0.0)))
        interval = min(interval * 1.5, MAX_POLL_INTERVAL)


def _probe(
    fs: Any, row_url: str, identifiers: tuple[str, ...], extension: str, failures: int
) -> tuple[_delivery.RowDelivery, int]:
    """One S3 probe; a transient failure counts (TransportError after too many in a row)."""
    try:
        state = _delivery.probe_row(fs, row_url, identifiers, read_cost=False, extension=extension)
        return state, 0
    except PermissionError as exc:
        raise TransportError(f"S3 refused to list {row_url}: {exc}") from None
    except Exception as exc:  # OSError, botocore's own errors: S3 did not answer
        failures += 1
        if failures >= MAX_PROBE_FAILURES:
            raise TransportError(
                f"S3 could not be listed at {row_url} ({failures} attempts): "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        logger.warning("probing %s failed (%s); retrying", row_url, type(exc).__name__)
        return _delivery.RowDelivery("pending"), failures


def _timeout(label: Any, url: str, wait_timeout: float, polls: int, state: str) -> DeliveryTimeout:
    return DeliveryTimeout(
        f"row {label!r}: nothing delivered under {url} within {wait_timeout:g} s "
        f"({polls} polls, last state {state!r})"
    )
