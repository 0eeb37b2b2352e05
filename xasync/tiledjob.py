"""A :class:`~xasync.jobs.Job` whose rows may each need several requests (tiles).

A tiled row is final when all its tiles are: ``failed`` if one of them failed (its error names
the tiles), else ``done``; before that it is in the least advanced state of its unfinished
tiles. Its ``row_url``
(the ``requests`` column of ``status()``) lists its request folders, space-separated, and its
``cost_pu`` is the sum of its shares of them. Rows of one request (packed rows included) are
shown as :class:`~xasync.jobs.Job` shows them.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, namedtuple
from collections.abc import Sequence
from typing import Any

from xasync.jobs import Job, RowStatus, State, _Row

logger = logging.getLogger(__name__)

__all__ = ["TiledJob"]

_PROGRESS = (State.QUEUED, State.CLAIMED, State.RUNNING, State.DONE)

#: What :class:`~xasync.jobs.Job` reads of a row (cheaper to make than a RowStatus).
_Head = namedtuple("_Head", "token row_url label")


class TiledJob(Job):
    """The rows of one call, each delivered by one or more requests.

    Parameters
    ----------
    rows : sequence
        Anything with ``token``, ``row_url`` (the row's first request) and ``label``.
    parts : sequence of sequence of (str, str)
        Per row, its requests as ``(request URL, name)``, e.g. ``(url, "tile (0, 1)")``.
    **kwargs
        See :class:`~xasync.jobs.Job`.

    """

    def __init__(
        self, rows: Sequence[Any], parts: Sequence[Sequence[tuple[str, str]]], **kwargs: Any
    ) -> None:
        super().__init__(rows, **kwargs)
        self._parts = [p if type(p) is tuple else tuple(p) for p in parts]
        if len(self._parts) != len(self._urls):
            raise ValueError(f"{len(self._parts)} part lists for {len(self._urls)} rows")
        share = Counter([p[0][0] for p in self._parts if len(p) == 1])  # most rows: one request
        share.update(u for p in self._parts if len(p) > 1 for u in {url for url, _ in p})
        self._share = dict(share)

    @property
    def urls(self) -> list[str]:
        """Every request URL of the job, once, in row order."""
        return list(dict.fromkeys(url for p in self._parts for url, _ in p))

    def row(self, index: int) -> RowStatus:
        """The current state of row ``index``."""
        with self.ledger.cond:
            entries = [self.ledger.get(url) for url, _ in self._parts[index]]
        return self._combined(index, entries)

    def snapshot(self) -> list[RowStatus]:
        """A consistent copy of every row's status."""
        with self.ledger.cond:
            urls = self.urls
            got = dict(zip(urls, self.ledger.entries(urls), strict=True))
        return [
            self._combined(i, [got[url] for url, _ in parts]) for i, parts in enumerate(self._parts)
        ]

    def _combined(self, index: int, entries: list) -> RowStatus:
        row, parts = self._rows[index], self._parts[index]
        each = [
            self._status(_Row(row.token, url, row.label), entry)
            for (url, _), entry in zip(parts, entries, strict=True)
        ]
        if len(each) == 1:
            return each[0]
        failed = [
            (name, s) for (_, name), s in zip(parts, each, strict=True) if s.state is State.FAILED
        ]
        if all(s.state.is_final for s in each):
            state = State.FAILED if failed else State.DONE
        else:  # final only when every tile is: waiting for the row waits for all of them
            state = min((s.state for s in each if not s.state.is_final), key=_PROGRESS.index)
        costs = [s.cost_pu for s in each if s.cost_pu is not None]
        ids = [s.request_id for s in each if s.request_id]
        started = [s.submitted for s in each if s.submitted is not None]
        ended = [s.finished for s in each if s.finished is not None]
        return RowStatus(
            row.token,
            " ".join(url for url, _ in parts),
            row.label,
            state=state,
            request_id=" ".join(ids) if ids else None,
            submitted=min(started) if started else None,
            finished=max(ended) if state.is_final and ended else None,
            cost_pu=sum(costs) if costs else None,
            error="; ".join(f"{name}: {s.error}" for name, s in failed) if failed else None,
            reused=all(s.reused for s in each),
            creates=sum(s.creates for s in each),
        )


def planned_job(planned: Any, specs: Sequence[Any], plans: Sequence[Any]) -> TiledJob:
    """The job of a planned call's rows (tiles, packs), nothing submitted yet.

    Parameters
    ----------
    planned : xasync.planned.PlannedSpecs
        The requests to buy and each row's sources.
    specs, plans : sequence
        The rows' own specs and read plans (labels).

    """
    from xasync.planned import row_parts

    parts = row_parts(planned)
    if not len(specs) == len(parts) == len(plans):
        raise ValueError(f"{len(specs)} specs, {len(parts)} part lists, {len(plans)} plans")
    tokens, labels = [s.token for s in specs], [plan.label for plan in plans]
    return TiledJob(list(map(_Head, tokens, [p[0][0] for p in parts], labels)), parts)


def planned_orders(planned: Any, plans: Sequence[Any], s3_extras: dict[str, Any]) -> list[Any]:
    """The submitter's order of each planned request (a body is built when it is created).

    Requests an earlier call bought (``reused``, see :mod:`xasync.pack_reuse`) get no body:
    the submitter follows them and never creates them.
    """
    from xasync.submitter import Order

    identifiers = tuple(o.identifier for o in plans[0].outputs)
    return [
        Order(
            index=k,
            token=spec.token,
            row_url=spec.row_url,
            identifiers=identifiers,
            body=None
            if getattr(spec, "reused", False)
            else functools.partial(spec.body, s3_extras),
        )
        for k, spec in enumerate(planned.requests)
    ]


def submit_planned(
    planned: Any,
    specs: Sequence[Any],
    plans: Sequence[Any],
    s3_extras: dict[str, Any],
    client: Any,
    fs: Any,
    options: Any,
    resubmit_failed: bool,
) -> TiledJob:
    """Hand a planned call's requests to the submitter at once; return the job of its rows.

    :func:`planned_job` then :func:`planned_orders` submitted (``process`` goes through
    :func:`xasync.callsubmit.start`, which writes the manifest first). The arguments are
    those of both, and ``client, fs, options, resubmit_failed`` as ``process`` passes them.
    """
    from xasync.submitter import SubmitOptions, get_submitter

    job = planned_job(planned, specs, plans)
    orders = planned_orders(planned, plans, s3_extras)
    opts = options or SubmitOptions()
    if resubmit_failed:
        opts = SubmitOptions(**{**opts.__dict__, "resubmit_failed": True})
    get_submitter().submit(job, orders, client=client, fs=fs, options=opts)
    logger.debug("%d rows, %d planned requests", len(specs), len(orders))
    return job


def planned_builder(planned: Any, specs: Sequence[Any], plans: Sequence[Any], **kw: Any) -> Any:
    """``build(i)``: row ``i``'s lazy Dataset, read from its own request or from its sources.

    ``kw`` are the keywords of :func:`xasync.lazy.build_dataset` (``reader``, ``chunks``...).
    """
    from xasync.lazy import build_dataset
    from xasync.mosaic import build_mosaic

    def build(i: int) -> Any:
        sources = planned.sources[i]
        own = len(sources) == 1 and sources[0].row_url == specs[i].row_url
        return build_dataset(plans[i], **kw) if own else build_mosaic(plans[i], sources, **kw)

    return build


def follow_planned(
    plans: Sequence[Any],
    sources: Sequence[Sequence[Any] | None],
    *,
    client: Any,
    fs: Any,
    options: Any,
    reader: Any,
    chunks: Any,
) -> tuple[TiledJob, Any]:
    """Re-attach to rows of planned calls (tiles, packs): follow their requests, buy nothing.

    ``sources[i]`` is row ``i``'s list of :class:`~xasync.planned.Source` (None: the row's own
    request). Returns the job and ``build(i)``, the row's lazy Dataset.
    """
    from xasync.lazy import build_dataset
    from xasync.mosaic import build_mosaic
    from xasync.submitter import Order, get_submitter

    parts = [
        tuple((s.row_url, s.name) for s in src) if src else ((p.row_url, "request"),)
        for p, src in zip(plans, sources, strict=True)
    ]
    rows = [_Head(p.token, part[0][0], p.label) for p, part in zip(plans, parts, strict=True)]
    job = TiledJob(rows, parts, charge_reused=True)
    known: dict[str, tuple[str, tuple[str, ...]]] = {}  # url -> (token, identifiers)
    for p, src in zip(plans, sources, strict=True):
        ids = tuple(o.identifier for o in p.outputs)
        for token, url in [(s.token, s.row_url) for s in src] if src else [(p.token, p.row_url)]:
            known.setdefault(url, (token, ids))
    orders = [
        Order(k, known[url][0], url, known[url][1], body=None) for k, url in enumerate(job.urls)
    ]
    get_submitter().submit(job, orders, client=client, fs=fs, options=options)

    def build(i: int) -> Any:
        parts = sources[i]
        if not parts:
            return build_dataset(plans[i], reader=reader, chunks=chunks)
        return build_mosaic(plans[i], list(parts), reader=reader, chunks=chunks)

    return job, build
