"""The start of a job run: every request URL decided at once, a task only for what must wait.

A task per request URL costs the submitter's loop about 40 us of CPU for each of a big job's
rows (create the task, schedule it, decide, follow, defer), all of it competing for the GIL with
the user's thread, which is assembling the call's Datasets at that moment. Here the decisions of
the whole job are taken in one pass, the ledger is told in one hold of its lock
(:meth:`~xasync.ledger.Ledger.follow_many`), and what ends at once (reused, kept, failed, or
not bought because the job was cancelled before it started) ends without a task. Tasks are
created only for the rows that wait on something: a create within the window of
:meth:`JobRun._window` (the others wait as URLs, :class:`~xasync.submitter.queueing.RowQueue`),
a running request to follow, another job's request to attach to.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from xasync.delivery import RowDelivery
from xasync.submitter.decision import Action, Kind

if TYPE_CHECKING:
    from xasync.submitter.run import JobRun

__all__ = ["start_all"]


def start_all(run: JobRun, seen: dict[str, RowDelivery]) -> None:
    """Decide every request URL of ``run`` from ``seen`` (the probe of its prefixes) and the
    ledger, and act: at once where nothing is awaited, in a task otherwise."""
    urls = list(run.groups)
    decisions = _decisions(run, urls, seen)
    stopped = run.job.is_cancelled() or run.stopped is not None
    follows: list[tuple[str, bool]] = []
    unbought: list[tuple[str, bool]] = []  # to create, but the job stopped before it started
    for url, action in zip(urls, decisions):
        if action.kind not in _UNFOLLOWED:
            into = unbought if stopped and action.kind is Kind.CREATE else follows
            into.append((url, action.restart))
    answers = iter(run.ledger.follow_many(follows, run.job.id))
    refused: set[str] = set()
    if unbought:
        message = run.not_bought_message()
        refused.update(run.ledger.end_unbought(unbought, run.job.id, message))
    run.job.decided_many(urls)
    ended: list[str] = []
    deferred: list[str] = []
    window = run.window()
    for url, action in zip(urls, decisions):
        kind = action.kind
        if kind is Kind.KEEP:
            ended.append(url)
            continue
        if kind is Kind.ATTACH:
            following = False
        elif stopped and kind is Kind.CREATE:
            if url not in refused:
                ended.append(url)  # ended above, nothing bought
                continue
            following = False
        else:
            following = next(answers)
        if following and kind is Kind.CREATE and len(run.creating) >= window:
            deferred.append(url)  # created later, as run.begin would defer it
            continue
        work = run.begin(url, run.groups[url][0], action, following)
        if work is not None:
            run.rows.spawn(url, run.guarded(url, work))
        elif not run.rows.is_deferred(url):
            ended.append(url)
    run.rows.defer_many(deferred)
    run.unsettled.difference_update(ended)
    run.confirmer.wake.set()  # the rows waiting for confirmation may be the last


def _decisions(run: JobRun, urls: list[str], seen: dict[str, RowDelivery]) -> list[Action]:
    """:meth:`JobRun.decide` for each URL; the rows that neither the ledger nor S3 know of (a
    new call: all of them) share one decision per kind of order (with or without a body)."""
    shared: dict[tuple[bool, bool], Action] = {}
    uses: Counter[tuple[bool, bool]] = Counter()
    decisions: list[Action] = []
    for url, known in zip(urls, run.ledger.entries(urls)):
        view = seen.get(url)
        if known is None and (view is None or view.state == "none"):
            key = (view is None, run.groups[url][0].body is not None)
            action = shared.get(key)
            if action is None:
                action = shared[key] = run.decide(url, view, None)
            else:
                uses[key] += 1
        else:
            action = run.decide(url, view, known)
        decisions.append(action)
    for key, n in uses.items():
        run.tally[shared[key].kind] += n
    return decisions


#: Decisions that do not make this job the request's follower.
_UNFOLLOWED = (Kind.KEEP, Kind.ATTACH)
