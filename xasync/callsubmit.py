"""The end of a ``process`` call: its manifest, then its rows handed to the submitter.

The manifest (see :mod:`xasync.callmanifest`) must be in the bucket before the first request of
the call is created, so that a later call or another process can reattach and never pay twice;
it need not be there when ``process`` returns. A call of :data:`BACKGROUND_ROWS` rows or more
therefore only checks at the call that the delivery location takes a write (one small PUT, so
a wrong bucket or credentials still raise there), and a background thread writes the manifest
(a few seconds at 100,000 rows), builds the submitter's orders and only then hands them over;
planned calls (tiles, packs: their requests are not the rows) alike.
If the manifest cannot be written there, nothing is bought: every row of the call ends failed
with the :class:`~xasync.errors.DeliveryAccessError` and :meth:`Job.wait` raises it. Smaller
calls do all of it before returning, as they always did.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dask.base import tokenize

from xasync import timeseries
from xasync.callmanifest import iter_manifest_rows
from xasync.errors import DeliveryAccessError
from xasync.jobs import Job
from xasync.ledger import Stage
from xasync.manifests import manifest_dir, write_manifest_text
from xasync.submitter import Order, SubmitOptions, get_submitter
from xasync.tiledjob import planned_job, planned_orders

logger = logging.getLogger(__name__)

__all__ = ["BACKGROUND_ROWS", "Call", "call_token", "check_writable", "start", "write_manifest"]

#: Calls of at least this many rows write their manifest after ``process`` returned.
BACKGROUND_ROWS = 10_000
#: The object a background call writes to check the delivery location (overwritten each time).
WRITE_CHECK_NAME = ".write-check"


@dataclass(repr=False)
class Call:
    """What the end of one ``process`` call needs (no secret but in ``s3_extras``)."""

    fs: Any
    root: str
    specs: Sequence[Any]
    plans: Sequence[Any]
    labels: Sequence[Any]
    series: Any = None
    planned: Any = None
    planning: tuple = ()
    s3_extras: Any = None  # delivery credentials: never in a repr
    client: Any = None
    options: SubmitOptions | None = None
    resubmit_failed: bool = False

    def __repr__(self) -> str:
        return f"Call({len(self.specs)} rows under {self.root})"


def call_token(specs: Sequence[Any], plans: Sequence[Any], planning: Sequence[Any]) -> str:
    """The deterministic id of a call (its manifest's name): its requests, labels and planning."""
    return tokenize(
        "xasync-call", [(spec.token, plan.label) for spec, plan in zip(specs, plans)], *planning
    )


def _access_error(root: str, exc: BaseException) -> DeliveryAccessError:
    return DeliveryAccessError(
        f"cannot write to the delivery location {root}: {type(exc).__name__}: {exc}. Check "
        "that the bucket exists and is reachable, and that storage_options give write access "
        "(the service needs it too)."
    )


def write_manifest(call: Call) -> str:
    """Write the call's manifest; any failure is a :class:`DeliveryAccessError`. Its URL."""
    rows = iter_manifest_rows(
        call.specs,
        call.plans,
        call.labels,
        series=timeseries.manifest_entries(call.series) if call.series else None,
        sources=call.planned.sources if call.planned is not None else None,  # tiles and packs
    )
    token = call_token(call.specs, call.plans, call.planning)
    try:
        return write_manifest_text(call.fs, call.root, token, rows)
    except Exception as exc:  # OSError from s3fs/gcsfs, botocore's errors (unreachable endpoint)
        raise _access_error(call.root, exc) from None


def check_writable(fs: Any, root: str) -> None:
    """One small PUT under the manifest folder: a :class:`DeliveryAccessError` if refused."""
    url = f"{manifest_dir(root)}/{WRITE_CHECK_NAME}"
    try:
        fs.pipe_file(url, hashlib.sha256(root.encode()).hexdigest().encode())
    except Exception as exc:  # as in write_manifest
        raise _access_error(root, exc) from None


def orders(call: Call) -> list[Order]:
    """The submitter's order of each request (the body with credentials is built when created).

    One per row, or one per planned request (tiles, packs) when the call was planned.
    """
    plans, extras = call.plans, call.s3_extras
    if call.planned is not None:
        return planned_orders(call.planned, plans, extras)
    identifiers = {p.outputs: tuple(o.identifier for o in p.outputs) for p in plans}
    return [
        Order(
            index=i,
            token=spec.token,
            row_url=plan.row_url,
            identifiers=identifiers[plan.outputs],
            body=functools.partial(spec.body, extras),
        )
        for i, (spec, plan) in enumerate(zip(call.specs, plans))
    ]


def _submit(call: Call, job: Job) -> None:
    opts = call.options or SubmitOptions()
    if call.resubmit_failed:
        opts = SubmitOptions(**{**opts.__dict__, "resubmit_failed": True})
    get_submitter().submit(job, orders(call), client=call.client, fs=call.fs, options=opts)


def _stop(job: Job, exc: BaseException) -> None:
    """Nothing of ``job`` was bought: every row fails for it (free for other calls), waiters
    re-raise ``exc``."""
    message = f"not submitted: {exc}; nothing was bought"
    ledger = job.ledger
    for url in dict.fromkeys(job.urls):
        with ledger.cond:
            entry = ledger.get(url)
            if entry is None or (not entry.is_final and entry.follower is None):
                ledger.update(url, stage=Stage.FAILED, error=message, local_to=job.id)
        job.decided(url)
    job.abort(exc)


def _background(call: Call, job: Job) -> None:
    try:
        write_manifest(call)  # before anything can be bought
        _submit(call, job)
    except Exception as exc:  # nothing was handed over: nothing is bought
        logger.error("xasync call under %s stopped before submitting: %s", call.root, exc)
        _stop(job, exc)


def _job(call: Call) -> Job:
    """The job of the call's rows: a :class:`~xasync.tiledjob.TiledJob` when planned."""
    if call.planned is not None:
        return planned_job(call.planned, call.specs, call.plans)
    return Job.from_rows(call.plans)  # a plan has the row's token, request URL and label


def start(call: Call) -> Job:
    """Write the manifest and hand the rows to the submitter (in the background when big).

    Returns the :class:`~xasync.jobs.Job` of the call's rows at once.

    Raises
    ------
    DeliveryAccessError
        The delivery location refuses a write (before anything is paid).

    """
    if len(call.specs) < BACKGROUND_ROWS:
        write_manifest(call)
        job = _job(call)
        _submit(call, job)
        return job
    check_writable(call.fs, call.root)
    job = _job(call)
    job.expect_submission()  # rows show queued until the submitter decided about them
    thread = threading.Thread(target=_background, args=(call, job), name="xasync-call", daemon=True)
    thread.start()
    return job
