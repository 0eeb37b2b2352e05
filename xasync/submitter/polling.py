"""Following one running request: status calls on a learned clock, S3 when the API fails.

The first status call comes at the account's learned first-call time after acceptance, later
ones on the learned schedule of :class:`~xasync.submitter.clock.PollClock` (bounded by
``max_detection_delay`` once a request runs past the learned durations). Any error
while asking the status (a 5xx, a 429, the token endpoint down, a dropped connection) is not the
request's failure: S3 is asked instead, and the request ends when its outputs or error.json are
there. Only when the API and S3 both fail ``outage_attempts`` times in a row does the follow end,
with :class:`~xasync.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from xasync.backoff import Backoff
from xasync.errors import TransportError, XasyncError
from xasync.submitter.s3 import probe, storage_name
from xasync.submitter.trace import trace

if TYPE_CHECKING:
    from xasync.submitter.run import JobRun

logger = logging.getLogger(__name__)

__all__ = ["poll_until_finished"]

_BACKOFF = Backoff(base=0.5, cap=10.0)


async def poll_until_finished(
    run: JobRun, url: str, identifiers: tuple[str, ...], request_id: str, accepted: float
) -> None:
    """Ask the status of ``request_id`` until it is over (``accepted``: loop time of the create
    answer). Returns when it ended; the caller confirms the outcome in S3."""
    loop = asyncio.get_running_loop()
    clock = run.slots.clock
    lazy = run.slots.lazy_polls()  # probes find the free slots: the first call waits longer
    due = accepted + (clock.past_delay() if lazy else clock.first_delay(run.opts))
    first, step, failures = True, 0.0, 0
    last_running: float | None = None
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        asked = loop.time() - accepted
        trace("status_sent", request_id, asked - (due - accepted))  # value: lateness (s)
        run.slots.count_call()
        try:
            running = await run.service.status(request_id)
        except XasyncError as exc:
            running, failures = await _ask_s3(run, url, identifiers, request_id, exc, failures)
            due = loop.time() + (_BACKOFF.delay(failures) if running else 0.0)
            if not running:
                break
            continue
        failures = 0
        trace("status", request_id, running)
        if first and not lazy:
            clock.first_answer(running, max(1, run.slots.running))
        first = False
        if not running:
            clock.ended(last_running, loop.time() - accepted)
            break
        last_running = asked
        run.mark_running(url, request_id)
        step = clock.next_delay(run.opts, asked, step)
        due = accepted + asked + step


async def _ask_s3(
    run: JobRun,
    url: str,
    identifiers: tuple[str, ...],
    request_id: str,
    error: Exception,
    failures: int,
) -> tuple[bool, int]:
    """The status call failed: is the request over according to S3? ``(running, failures)``."""
    logger.debug(
        "%s: status of %s failed (%s); asking %s", url, request_id, error, storage_name(run.fs)
    )
    try:
        row = (await probe(run.fs, {url: identifiers}))[url]
    except TransportError as exc:
        failures += 1
        if failures >= run.opts.outage_attempts:
            raise TransportError(
                f"lost contact with the service and with {storage_name(run.fs)} while following "
                f"request {request_id}: {error}; {exc}"
            ) from None
        return True, failures
    over = row.state == "done" or (row.state == "failed" and row.request_id == request_id)
    return not over, 0
