"""``open_delivery``: re-attach to results delivered earlier, from S3 alone.

Every ``process`` call leaves one manifest under ``<delivery>/_xasync/`` describing its rows
(grid, outputs, label, time range). Re-attaching rebuilds the same lazy Datasets from the manifests
and follows the rows' states in S3; no Sentinel Hub credentials are needed unless rows are still
running and a ``client`` is given to poll them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from xasync import delivery as _delivery
from xasync.errors import ValidationError
from xasync.jobs import Job, RowStatus
from xasync.lazy import build_dataset
from xasync.plan import ReadPlan
from xasync.process import _delivery_root, delivery_filesystem
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
        Only needed to poll rows that are still running; without it they are followed in S3.
    chunks : optional
        Dask chunks, as for ``process``.
    options : SubmitOptions, optional
        Polling tuning.

    Returns
    -------
    xasync.Results
        One lazy Dataset per row found in the manifests (the rows of several calls are
        concatenated, duplicates dropped), indexed by the original row labels.

    Raises
    ------
    xasync.ValidationError
        When no manifest is found under ``delivery``.

    """
    root = _delivery_root(delivery)
    fs = delivery_filesystem(storage_options)
    manifests = _delivery.read_manifests(fs, root)
    plans: list[ReadPlan] = []
    seen: set[str] = set()
    series: dict[str, dict] = {}  # token -> time-series entry (xasync.series_data)
    for manifest in manifests:
        for row in manifest.get("rows", []):
            plan = ReadPlan.from_dict(row["plan"])
            if plan.token not in seen:
                seen.add(plan.token)
                plans.append(plan)
                if isinstance(row.get("series"), dict):
                    series[plan.token] = row["series"]
    if not plans:
        raise ValidationError(f"no xasync delivery manifest found under {root}/_xasync/")
    logger.info("re-attaching to %d rows under %s", len(plans), root)

    job = Job.from_rows(RowStatus(token=p.token, row_url=p.row_url, label=p.label) for p in plans)
    orders = [
        Order(i, p.token, p.row_url, tuple(o.identifier for o in p.outputs), body=None)
        for i, p in enumerate(plans)
    ]
    get_submitter().submit(job, orders, client=client, fs=fs, options=options)
    reader = ReaderConfig(storage_options=dict(storage_options) if storage_options else None)
    index = pd.Index([p.label for p in plans], name="label")

    def build(i: int) -> Any:
        ds = build_dataset(plans[i], reader=reader, chunks=chunks)
        entry = series.get(plans[i].token)
        return ds if entry is None else reattached_dataset(entry, ds, reader)

    return Results.deferred(
        len(plans),
        build,
        index,
        job,
        delivery=root,
    )
