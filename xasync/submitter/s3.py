"""S3 as the submitter sees it: probes with typed errors, and confirmation of finished requests.

Every S3 failure the loop meets becomes a :class:`~xasync.errors.TransportError` (never a raw
botocore or OS error). :class:`Confirmer` confirms finished requests several rows per listing,
tolerating S3 visibility lag; when S3 cannot be reached ``outage_attempts`` times in a row the
rows waiting for confirmation get the TransportError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from xasync import delivery
from xasync.backoff import Backoff
from xasync.errors import TransportError
from xasync.submitter.options import SubmitOptions
from xasync.submitter.trace import trace

logger = logging.getLogger(__name__)

__all__ = ["Confirmer", "probe", "storage_name"]

_BACKOFF = Backoff(base=0.2, cap=5.0)
#: Shortest wait before a listing (seconds).
BATCH_MIN = 0.1
#: At the job's end, up to this many rows (and at most ``TAIL_SHARE`` of the job's rows, so
#: that the extra listings stay within a small share of a call per request) are probed one
#: prefix each (in parallel) instead of listing a root of several pages one after the other.
TAIL_PROBES = 32
TAIL_SHARE = 0.05


def storage_name(fs: Any) -> str:
    """How messages name the delivery's storage: ``S3``, ``GCS``, or the URL scheme."""
    protocol = getattr(fs, "protocol", "s3")
    scheme = protocol if isinstance(protocol, str) else (tuple(protocol) or ("s3",))[0]
    if scheme in ("gs", "gcs"):
        return "GCS"
    return "S3" if scheme in ("s3", "s3a") else f"{scheme}:// storage"


def s3_error(exc: BaseException, what: str, fs: Any = None) -> TransportError:
    """A typed error for a failure of the delivery's storage (S3, or what ``fs`` is): the
    message names the storage and the operation, never a secret."""
    name = "S3" if fs is None else storage_name(fs)
    return TransportError(f"{name} {what} failed: {type(exc).__name__}: {str(exc)[:200]}")


async def probe(fs: Any, rows: Mapping[str, tuple[str, ...]]) -> dict[str, delivery.RowDelivery]:
    """``delivery.probe_rows`` in a worker thread; S3 failures raise TransportError."""
    if not rows:
        return {}
    try:
        return await asyncio.to_thread(delivery.probe_rows, fs, dict(rows))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # OSError, botocore errors: all mean "S3 did not answer"
        raise s3_error(exc, "listing", fs) from None


async def probe_until_answer(
    fs: Any, rows: Mapping[str, tuple[str, ...]], attempts: int
) -> dict[str, delivery.RowDelivery]:
    """:func:`probe`, retried with back-off ``attempts`` times before its TransportError."""
    for attempt in range(attempts):
        try:
            return await probe(fs, rows)
        except TransportError as exc:
            if attempt + 1 >= attempts:
                raise
            wait = _BACKOFF.delay(attempt)
            logger.debug("%s; retrying in %.2f s", exc, wait)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


class Confirmer:
    """Confirms finished requests in S3, several rows per listing.

    Parameters
    ----------
    fs : fsspec filesystem
        The delivery's filesystem.
    opts : SubmitOptions
        ``outage_attempts`` is read.
    listing_pages : int
        About how many LIST pages a listing of the whole delivery root costs; fewer waiting
        rows are cheaper to probe one prefix each.
    rows : int
        The job's rows (request URLs): at the tail, up to ``TAIL_SHARE`` of them (at most
        ``TAIL_PROBES``) are probed one prefix each rather than by a root listing of several
        pages.
    window : callable, optional
        Seconds to gather rows before a listing (default 0.1 s): rows finishing within it share
        one listing. Confirmation is off the critical path (the slot is already free), so it
        may be a good share of a request's duration.
    tail : callable, optional
        ``True`` when no other row of the job can join the batch any more (every remaining row
        waits for confirmation): the listing is made at once.
    """

    def __init__(
        self,
        fs: Any,
        opts: SubmitOptions,
        *,
        listing_pages: int = 1,
        rows: int = 0,
        window: Callable[[], float] = lambda: BATCH_MIN,
        tail: Callable[[], bool] = lambda: False,
    ) -> None:
        self.fs, self.opts = fs, opts
        self.listing_pages = listing_pages
        self.tail_probes = min(TAIL_PROBES, int(TAIL_SHARE * rows))
        self.window, self.tail = window, tail
        self.waiting: dict[str, tuple[tuple[str, ...], str | None, float, asyncio.Future]] = {}
        self.wake = asyncio.Event()

    async def confirm(
        self, url: str, identifiers: tuple[str, ...], request_id: str | None, grace: float | None
    ) -> delivery.RowDelivery | None:
        """Wait until the request's outcome is in S3; ``None`` after ``grace`` s without it.

        Raises TransportError when S3 stays unreachable.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        deadline = float("inf") if grace is None else loop.time() + grace
        self.waiting[url] = (identifiers, request_id, deadline, fut)
        self.wake.set()
        return await fut

    async def run(self) -> None:
        """The batching loop (one task per job run)."""
        pause: float | None = None  # None: gather a new batch; else wait that long and retry
        failures = 0
        while True:
            if not self.waiting:
                await self.wake.wait()
                pause = None
            await self._gather(pause)
            batch = dict(self.waiting)
            try:
                trace("probe", str(len(batch)))
                rows = await self._probe(batch)
                trace("probed", str(len(batch)))
                failures = 0
            except TransportError as exc:  # an S3 hiccup: try again, unless S3 stays away
                failures += 1
                if failures >= self.opts.outage_attempts:
                    self._fail_all(batch, exc)
                    failures = 0
                pause = _BACKOFF.delay(failures)
                continue
            resolved = self._resolve(batch, rows)
            pause = None if resolved else min(5.0, 2 * (pause or BATCH_MIN))

    async def _gather(self, pause: float | None) -> None:
        """Wait ``pause`` s (a retry), or gather rows for up to :attr:`window` s, ending early
        when no other row can come (:attr:`tail`)."""
        self.wake.clear()
        if pause is not None:
            await asyncio.sleep(pause)
            return
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # rows whose end was seen in the same step join
        end = loop.time() + max(BATCH_MIN, self.window())
        while not self.tail() and loop.time() < end:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # comes as the wake-up does, and this task would run on after the job's end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(end - loop.time()):
                    await self.wake.wait()
            self.wake.clear()

    def _resolve(self, batch: dict, rows: dict[str, delivery.RowDelivery]) -> int:
        now = asyncio.get_running_loop().time()
        resolved = 0
        for url, (_ids, request_id, deadline, fut) in batch.items():
            row = rows.get(url)
            ours = row is not None and (
                row.state == "done"
                or (row.state == "failed" and request_id in (None, row.request_id))
            )
            if ours:
                if not fut.done():
                    fut.set_result(row)
                self.waiting.pop(url, None)
                resolved += 1
            elif now > deadline:
                if not fut.done():
                    fut.set_result(None)
                self.waiting.pop(url, None)
        return resolved

    def _fail_all(self, batch: dict, exc: TransportError) -> None:
        for url, (*_rest, fut) in batch.items():
            if not fut.done():
                fut.set_exception(exc)
            self.waiting.pop(url, None)

    async def _probe(self, batch: dict) -> dict[str, delivery.RowDelivery]:
        # one small listing per row when that costs no more calls than a listing of the whole
        # root; and at the job's end (the tail: the user waits for these rows) also instead of
        # a root listing of several pages, which are listed one after the other
        per_row = len(batch) <= self.listing_pages or (
            self.listing_pages > 1 and len(batch) <= self.tail_probes and self.tail()
        )
        if per_row:
            results = await asyncio.gather(
                *(probe(self.fs, {url: ids}) for url, (ids, *_rest) in batch.items())
            )
            return {k: v for r in results for k, v in r.items()}
        return await probe(self.fs, {url: ids for url, (ids, *_r) in batch.items()})
