"""``open_delivery``: re-attach to results delivered earlier, from S3 alone.

Every ``process`` call leaves one manifest under ``<delivery>/_xasync/`` describing its rows
(grid, outputs, label, time range). Re-attaching rebuilds the same lazy Datasets from the manifests
and follows the rows' requests: finished ones are read at once, running ones are followed until
they end, by status calls when a ``client`` is given, else in S3 (their outputs or ``error.json``
appear when they end). No Sentinel Hub credentials are needed. ``status()`` reports what each
delivered request was charged (from its request copy).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from xasync import delivery as _delivery
from xasync.deliveryaccess import delivery_filesystem, delivery_root
from xasync.errors import ValidationError
from xasync.jobs import Job
from xasync.lazy import build_dataset
from xasync.plan import ReadPlan
from xasync.reader import ReaderConfig
from xasync.results import Results
from xasync.series_data import reattached_dataset
from xasync.submitter import Order, SubmitOptions, get_submitter

if TYPE_CHECKING:
    from xasync.client import Client

logger = logging.getLogger(__name__)


def open_delivery(
    delivery: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    client: Client | None = None,
    chunks: int | tuple[int, int] | Mapping[str, int] | None = None,
    options: SubmitOptions | None = None,
) -> Results:
    """Re-attach to what earlier ``process`` calls delivered under ``delivery``.

    Parameters
    ----------
    delivery : str
        The ``s3://bucket/prefix`` given to ``process``.
    storage_options : dict, optional
        s3fs options to list and read the bucket.
    client : xasync.Client, optional
        Polls rows that are still running; without it they are followed in S3 until they end.
        Nothing is ever created.
    chunks : optional
        Dask chunks, as for ``process``.
    options : SubmitOptions, optional
        Polling tuning.

    Returns
    -------
    xasync.Results
        One lazy Dataset per row found in the manifests (the rows of several calls are
        concatenated, duplicate rows dropped), indexed by the original row labels with their
        types (Timestamps, tuples of a MultiIndex).

    Raises
    ------
    xasync.ValidationError
        When no manifest is found under ``delivery``.

    """
    root = delivery_root(delivery)
    fs = delivery_filesystem(storage_options, root)
    manifests = _delivery.read_manifests(fs, root)
    plans, sources = _plans(manifests)
    series = {  # row_url -> time-series entry (xasync.series_data): rebuilds a series
        row["plan"]["row_url"]: row["series"]
        for manifest in manifests
        for row in manifest.get("rows", [])
        if isinstance(row.get("series"), dict)
    }
    if not plans:
        raise ValidationError(f"no xasync delivery manifest found under {root}/_xasync/")
    logger.info("re-attaching to %d rows under %s", len(plans), root)

    reader = ReaderConfig(storage_options=dict(storage_options) if storage_options else None)
    job: Job
    if any(sources):  # rows of tiles or packs (planned calls), maybe beside others
        from xasync.tiledjob import follow_planned

        kw = {"client": client, "fs": fs, "options": options, "reader": reader, "chunks": chunks}
        job, read = follow_planned(plans, sources, **kw)
    else:
        job = Job.from_rows(plans, charge_reused=True)
        orders = [
            Order(i, p.token, p.row_url, tuple(o.identifier for o in p.outputs), body=None)
            for i, p in enumerate(plans)
        ]
        get_submitter().submit(job, orders, client=client, fs=fs, options=options)

        def read(i: int) -> Any:
            return build_dataset(plans[i], reader=reader, chunks=chunks)

    def build(i: int) -> Any:
        ds = read(i)
        entry = series.get(plans[i].row_url)  # a time series (tiled or packed too)
        return ds if entry is None else reattached_dataset(entry, ds, reader)

    labels = [p.label for p in plans]
    if labels and all(isinstance(v, tuple) for v in labels):
        index = pd.MultiIndex.from_tuples(labels)
    else:
        index = pd.Index(labels, name="label", tupleize_cols=False)
    return Results.deferred(
        len(plans),
        build,
        index,
        job,
        delivery=root,
    )


def _plans(manifests: list[dict[str, Any]]) -> tuple[list[ReadPlan], list[list | None]]:
    """The rows of every manifest, once each (a row is its request URL and its label), and the
    sources of rows of tiles or packs (None for a row read from its own request)."""
    from xasync.planned import source_from_dict

    plans: list[ReadPlan] = []
    sources: list[list | None] = []
    seen: set[tuple[str, str]] = set()
    for manifest in manifests:
        for row in manifest.get("rows", []):
            plan = ReadPlan.from_dict(row["plan"])
            if "label" in row:  # typed form (Timestamps, tuples) when the writer stored it
                plan = ReadPlan(
                    plan.token,
                    plan.row_url,
                    plan.grid,
                    plan.outputs,
                    _delivery.decode_label(row["label"]),
                    plan.time_range,
                    plan.mask_wkb,
                )
            key = (plan.row_url, repr(plan.label))
            if key not in seen:
                seen.add(key)
                plans.append(plan)
                rows = row.get("sources")
                sources.append([source_from_dict(d) for d in rows] if rows else None)
    return plans, sources
