"""Creating one request: a slot, a claim, one create, never retried blindly.

A create whose answer was lost (dropped connection, 5xx) may have been accepted: the request's
prefix is probed after ``ambiguous_grace`` and an appeared request is followed instead of buying
a second one. 429s wait (``Retry-After`` honoured) and retry without counting as attempts. When
another process holds the claim (:mod:`~xasync.submitter.claim`), its request is followed in S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xasync.backoff import Backoff
from xasync.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Forbidden,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)
from xasync.submitter import claim
from xasync.submitter.s3 import probe
from xasync.submitter.trace import trace

if TYPE_CHECKING:
    from xasync.submitter.run import JobRun

logger = logging.getLogger(__name__)

__all__ = ["Created", "create"]

_BACKOFF = Backoff(base=0.5, cap=30.0)


@dataclass(frozen=True)
class Created:
    """The result of :func:`create`: a request to follow, or why there is none.

    ``by_us`` is False when another process created it (follow it in S3 only);
    ``error`` is set when nothing was bought and nothing will be.
    """

    request_id: str | None = None
    by_us: bool = True
    error: str | None = None


async def create(
    run: JobRun,
    url: str,
    identifiers: tuple[str, ...],
    body: Callable[[], dict[str, Any]],
    known: tuple[str, ...] | None,
) -> Created:
    """Take a slot, claim ``url`` and create its request (see the module docstring).

    ``known``: the request folders the decision saw (None: S3 was not read yet). The claim is
    taken only once a slot is held, so that it does not age while waiting for one.
    """
    if run.job.is_cancelled():  # nothing is read, claimed or bought after a cancel
        return Created(error=run.not_bought_message())
    if known is None:
        known = tuple(await _request_ids(run, url, identifiers))
    generation = len(known)
    state = _Claim()
    created = await _create(run, url, identifiers, body, set(known), state)
    if state.claimed and created.error is not None:
        # nothing was bought: let the next buyer claim at once instead of after the timeout
        with contextlib.suppress(TransportError):
            await asyncio.to_thread(claim.release, run.fs, url, generation, state.takeover)
    return created


@dataclass
class _Claim:
    """Our claim of one request: whether we hold it, which claim of the chain
    (:mod:`.claim`), and when we took it (loop time)."""

    claimed: bool = False
    takeover: int = 0
    at: float = 0.0


async def _create(
    run: JobRun,
    url: str,
    identifiers: tuple[str, ...],
    body: Callable[[], dict[str, Any]],
    seen: set[str],
    state: _Claim,
) -> Created:
    generation = len(seen)
    attempts = rate_limited = 0
    claimed = False
    while True:
        held = await _slot_and_claim(run, url, identifiers, seen, state, claimed)
        if held is not True:
            if held is False:
                continue
            return held
        claimed = True
        if await _superseded(run, url, generation, state):
            run.slots.release()
            claimed = False
            continue
        run.mark_claimed(url)
        sent = asyncio.get_running_loop().time()
        try:
            payload = body()
            trace("create_sent", url, run.slots.is_probe())
            run.slots.count_call()
            rid = await run.service.create(payload)
        except RateLimited as exc:
            if run.slots.is_probe():  # every slot was still running: try again, claim kept
                run.slots.probe_refused(sent)
                trace("probe_refused", url)
                continue
            wait = run.slots.rate_limited(exc.retry_after, rate_limited)
            rate_limited += 1
            run.slots.release()
            claimed = await _unclaim(run, url, generation, state)
            logger.debug("%s: 429, retrying in %.2f s", url, wait)
            await asyncio.sleep(wait)
            continue
        except (BadRequest, Unauthorized, Forbidden, AuthError) as exc:
            run.slots.release()
            return Created(error=str(exc))
        except (ServerError, TransportError, ApiError) as exc:
            attempts += 1
            rid = await _lost_answer(run, url, identifiers, seen, exc)
            if rid is None:
                run.slots.release()
                if attempts >= run.opts.max_create_attempts:
                    return Created(error=f"could not create the request: {exc}")
                claimed = await _unclaim(run, url, generation, state)
                await asyncio.sleep(_BACKOFF.delay(attempts - 1))
                continue
            logger.info("%s: the lost create was accepted as %s", url, rid)
        run.slots.count_call(created=True)
        run.slots.started()
        trace("created", url, rid)
        return Created(rid)


async def _slot_and_claim(
    run: JobRun,
    url: str,
    identifiers: tuple[str, ...],
    seen: set[str],
    state: _Claim,
    claimed: bool,
) -> Created | bool:
    """Hold a slot and the claim: ``True`` when both are held; ``False`` to start over (the
    claim vanished or went stale); a :class:`Created` to return (bought by another process, or
    stopped). Nothing is held on any other answer.

    When the account's requests are short next to ``claim_timeout``, the next requests to
    start claim while they wait for a slot (at most K of them, :attr:`Account.ahead`), so that
    the claim's S3 write is not between a freed slot and the next create.
    """
    cancelled = run.job.is_cancelled
    if not claimed and run.slots.claims_early(run.opts.claim_timeout):
        await run.rows.wait(url, run.slots.ahead.acquire())
        try:
            if cancelled():  # cancelled while waiting to claim ahead: write nothing
                return _stopped(run)
            got, age = await _take(run, url, seen, state)
            if got != claim.HELD and not cancelled():
                if not await run.slots.acquire(cancelled):
                    return _stopped(run)
                trace("slot", url)
                return True
        finally:
            run.slots.ahead.release()
    else:
        waiting = run.slots.acquire(cancelled)
        if not await (waiting if claimed else run.rows.wait(url, waiting)):
            return _stopped(run)
        trace("slot", url)
        if claimed:
            return True
        got, age = await _take(run, url, seen, state)
        if got != claim.HELD and not cancelled():
            return True
        run.slots.release()  # no slot is held while another process buys it
    if got != claim.HELD:  # told to stop while claiming
        return Created(error=run.not_bought_message())
    found = await _wait_for_other(run, url, identifiers, seen, state, age)
    return Created(found, by_us=False) if found is not None else False


def _stopped(run: JobRun) -> Created:
    """Told to stop while waiting: this row is not bought, nor are the rows queued behind it."""
    run.end_queued()
    return Created(error=run.not_bought_message())


async def _take(run: JobRun, url: str, seen: set[str], state: _Claim) -> tuple[str, float | None]:
    """Try to claim ``url`` (in a worker thread); ``state.claimed`` tells whether we wrote it."""
    got, age = await asyncio.to_thread(
        claim.take, run.fs, url, len(seen), run.owner, state.takeover
    )
    if got != claim.HELD:
        state.claimed = got == claim.WON
        state.at = asyncio.get_running_loop().time()
    return got, age


async def _unclaim(run: JobRun, url: str, generation: int, state: _Claim) -> bool:
    """Drop our claim while we wait to retry (a claim lives one create attempt); ``False``."""
    if state.claimed:
        with contextlib.suppress(TransportError):
            await asyncio.to_thread(claim.release, run.fs, url, generation, state.takeover)
        state.claimed = False
    return False


async def _superseded(run: JobRun, url: str, generation: int, state: _Claim) -> bool:
    """Whether our claim, held long enough to look stale to others, was taken over.

    A claim is taken over only after ``claim_timeout`` (judged on another machine's clock):
    before creating with a claim held for half of it, we look whether the next claim of the
    chain exists. Then the new holder buys; we move to its claim and follow its request.
    """
    if not state.claimed:
        return False
    if asyncio.get_running_loop().time() - state.at < run.opts.claim_timeout / 2:
        return False
    try:
        taken = await asyncio.to_thread(claim.exists, run.fs, url, generation, state.takeover + 1)
    except TransportError:
        return False  # as if not taken over: the create goes ahead
    if taken:
        logger.warning("%s: our claim was taken over before the create; following", url)
        state.takeover += 1
        state.claimed = False
    return taken


async def _request_ids(run: JobRun, url: str, identifiers: tuple[str, ...]) -> set[str]:
    return set((await probe(run.fs, {url: identifiers}))[url].request_ids)


async def _lost_answer(
    run: JobRun, url: str, identifiers: tuple[str, ...], known: set[str], exc: Exception
) -> str | None:
    """After a create without a usable answer: did the service accept it anyway?"""
    if isinstance(exc, TransportError) and not exc.maybe_sent:
        return None
    await asyncio.sleep(run.opts.ambiguous_grace)
    new = await _request_ids(run, url, identifiers) - known
    return sorted(new)[-1] if new else None


async def _wait_for_other(
    run: JobRun,
    url: str,
    identifiers: tuple[str, ...],
    known: set[str],
    state: _Claim,
    age: float | None,
) -> str | None:
    """Another process holds the claim: its new request id, or None to claim again.

    None comes back when the claim vanished (claim it again), or when it is stale (older than
    ``claim_timeout`` with no new request folder): then the next claim of the chain is the one
    to take (``state.takeover``; the stale one is left in place, see :mod:`.claim`).
    """
    generation, takeover = len(known), state.takeover
    loop = asyncio.get_running_loop()
    pause = 0.0
    stale_at = loop.time() + max(0.0, run.opts.claim_timeout - (age or 0.0))
    while True:
        await asyncio.sleep(pause)
        new = await _request_ids(run, url, identifiers) - known
        if new:
            logger.info("%s: bought by another process as %s", url, sorted(new)[-1])
            return sorted(new)[-1]
        if not await asyncio.to_thread(claim.exists, run.fs, url, generation, takeover):
            return None
        if loop.time() >= stale_at:
            logger.info("%s: taking over a stale claim", url)
            state.takeover = takeover + 1
            return None
        pause = min(5.0, max(run.opts.ambiguous_grace, pause * 1.5))
