"""What the submitter is given: tuning options and one order per row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Order", "SubmitOptions"]


@dataclass(frozen=True)
class SubmitOptions:
    """Tuning of the submission and polling (defaults suit the real service and the emulator).

    Parameters
    ----------
    first_poll : float
        Seconds after a create before the first status call while no duration is known yet;
        later polls grow by ``poll_growth`` up to ``max_poll_interval``. Once requests of the
        account have ended, status calls follow the learned schedule of
        :class:`~xasync.submitter.clock.PollClock` (about 1.3 calls per request whatever the
        duration).
    max_poll_interval : float
        Upper bound of the interval between two status calls of one request.
    poll_growth : float
        Factor by which the interval grows while a request keeps running and nothing is learned.
    max_detection_delay : float
        Upper bound, in seconds, of the step between two status calls once a request is past its
        learned duration: the end of a request is seen at most this late (plus one round trip).
    visibility_grace : float
        Seconds a finished request's outputs may take to become visible in S3 before the row is
        declared failed.
    ambiguous_grace : float
        Seconds to wait before probing the row's prefix after a create whose answer was lost.
    max_create_attempts : int
        Creates tried per request when answers are lost or the service errs (429s not counted).
    resubmit_failed : bool
        Buy a new request for rows whose earlier delivery holds ``error.json``.
    claim_timeout : float
        Seconds after which a claim object (another process is creating this request) with no
        request folder beside it is stale and may be taken over. A claim lives for one create
        attempt (it is dropped while waiting after a 429 or a failed attempt), so this only has
        to exceed one create call (the client's timeout) plus ``ambiguous_grace``. With a
        configured concurrency and learned durations under a quarter of it, the next K requests
        claim while they wait for a slot (about one duration), so that the claim's S3 write is
        not between a freed slot and the create.
    probe_creates : bool
        Experimental, off by default (see docs/performance.md, section 1f). With a configured
        concurrency, once durations are learned: while rows wait for a slot and every slot
        runs, try the next create when a slot is likely free (the earliest expected end among
        the running requests), instead of waiting for a status call to see which request
        ended. A refused try is one counted call answered 429 ("maximum number of concurrent
        async requests reached", nothing bought; the service documents no ``Retry-After`` for
        it); tries stop while the account's calls would exceed 2.4 per created request.
        Meanwhile most status calls wait until the learned durations are past. ``False``: slots
        are freed by status calls only.
    outage_attempts : int
        Consecutive failed attempts to reach both the API and S3 after which a followed request
        is given up with :class:`~xasync.errors.TransportError` (the job then buys nothing more).

    """

    first_poll: float = 0.25
    max_poll_interval: float = 30.0
    poll_growth: float = 1.5
    max_detection_delay: float = 2.0
    visibility_grace: float = 120.0
    ambiguous_grace: float = 1.0
    max_create_attempts: int = 5
    resubmit_failed: bool = False
    claim_timeout: float = 60.0
    outage_attempts: int = 4
    probe_creates: bool = False


@dataclass(frozen=True)
class Order:
    """One row to submit: where it is delivered and how to build its body.

    ``body`` is a callable returning the full request body (with the delivery credentials; never
    logged), called only when the request is really created; ``None`` for rows that are only
    followed (re-attached). Orders with the same ``row_url`` share one request.
    """

    index: int
    token: str
    row_url: str
    identifiers: tuple[str, ...]
    body: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)
