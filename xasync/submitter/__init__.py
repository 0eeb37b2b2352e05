"""The submission queue: one asyncio loop in a daemon thread per process.

What it does for each request of a ``process`` call (rows that buy the same thing share one):

1. **Decide from S3** (one listing for all rows, then :func:`~xasync.submitter.decision.decide`):
   a finished delivery is reused at 0 PU, a running request is attached to, a failed one is
   reported (not re-bought unless asked), a request another job of this process follows is
   waited for (the ledger); only requests with nothing delivered are created.
2. **One buyer**: a claim written with an S3 conditional write makes sure one process creates it
   (:mod:`~xasync.submitter.claim`); a create whose answer was lost is never retried blindly
   (:mod:`~xasync.submitter.creating`).
3. **At most K in flight** per account (:mod:`~xasync.submitter.slots`), K configured or learned
   from 429s.
4. **Few calls**: status calls on a clock learned from the service's answers; API errors while
   following fall back to S3 (:mod:`~xasync.submitter.polling`); outcomes are confirmed in S3,
   several rows per listing (:mod:`~xasync.submitter.s3`).

Outcomes go to :data:`xasync.ledger.LEDGER`; ``Results`` reads them through its
:class:`~xasync.jobs.Job`. The loop never blocks the caller's thread.
"""

from xasync.submitter.loop import Submitter, get_submitter
from xasync.submitter.options import Order, SubmitOptions

__all__ = ["Order", "SubmitOptions", "Submitter", "get_submitter"]
