"""``process``: from a GeoDataFrame to lazy Datasets, one Async API request per row.

The order of work is the promise made to the user: everything that can be checked is checked
before anything is paid for (geometry, grid, time, evalscript outputs, delivery URL, credentials,
a writable bucket), then the call returns at once while a background loop submits.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dask.base import tokenize

from xasync import delivery, timeseries
from xasync.errors import AuthError, ValidationError, XasyncError
from xasync.jobs import Job, RowStatus
from xasync.lazy import build_dataset
from xasync.reader import ReaderConfig
from xasync.request import build_specs
from xasync.results import Results
from xasync.submitter import Order, SubmitOptions, get_submitter

if TYPE_CHECKING:
    import geopandas as gpd

    from xasync.client import Client

logger = logging.getLogger(__name__)


class DeliveryAccessError(ValidationError):
    """The delivery bucket cannot be written with the given credentials (checked before paying)."""


def process(
    gdf: gpd.GeoDataFrame,
    evalscript: str,
    *,
    data: str | Sequence[Mapping[str, Any]] = "sentinel-2-l2a",
    time: Any = None,
    resolution: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    crs: Any = None,
    delivery: str,
    storage_options: Mapping[str, Any] | None = None,
    client: Client | None = None,
    chunks: int | tuple[int, int] | Mapping[str, int] | None = None,
    mask: bool = False,
    outputs: Mapping[str, Any] | None = None,
    responses: Sequence[str] | None = None,
    bounds: str = "geometry",
    iam_role_arn: str | None = None,
    resubmit_failed: bool = False,
    options: SubmitOptions | None = None,
    freq: Any = None,
    temporal: str = "orbit",
    reducer: str = "median",
) -> Results:
    """Submit one Async request per row and return lazy Datasets at once.

    See :meth:`xasync.accessor.XasyncAccessor.process` for the parameters (``freq``,
    ``temporal``, ``reducer``: a time series per row, :mod:`xasync.timeseries`).
    """
    from xasync.client import Client  # deferred: keeps ``import xasync`` light

    root = _delivery_root(delivery)
    specs = build_specs(
        gdf,
        evalscript,
        data=data,
        time=time,
        resolution=resolution,
        size=size,
        crs=crs,
        delivery=root,
        outputs=outputs,
        responses=responses,
        bounds=bounds,
        mask=mask,
        storage_options=dict(storage_options) if storage_options else None,
    )
    series = timeseries.plan_call(specs, freq, temporal, reducer, storage_options)
    if series is not None:
        specs = series.specs
    s3_extras = delivery_credentials(storage_options, iam_role_arn)
    client = client if client is not None else Client.from_env()
    _check_credentials(client)

    fs = delivery_filesystem(storage_options)
    plans = [spec.read_plan() for spec in specs]
    call_token = tokenize("xasync-call", [spec.token for spec in specs])
    extras = timeseries.manifest_entries(series) if series is not None else None
    _write_manifest(fs, root, call_token, specs, plans, extras)

    job = Job.from_rows(
        RowStatus(token=s.token, row_url=s.row_url, label=p.label) for s, p in zip(specs, plans)
    )
    orders = [
        Order(
            index=i,
            token=spec.token,
            row_url=spec.row_url,
            identifiers=tuple(o.identifier for o in plan.outputs),
            body=functools.partial(spec.body, s3_extras),
        )
        for i, (spec, plan) in enumerate(zip(specs, plans))
    ]
    opts = options or SubmitOptions()
    if resubmit_failed:
        opts = SubmitOptions(**{**opts.__dict__, "resubmit_failed": True})
    get_submitter().submit(job, orders, client=client, fs=fs, options=opts)

    reader = ReaderConfig(storage_options=dict(storage_options) if storage_options else None)
    logger.info("submitting %d requests under %s", len(specs), root)
    if series is not None:
        build = functools.partial(_build_plan, plans, reader, chunks)
        return timeseries.make_results(series, build, gdf.index, job, delivery=root, reader=reader)
    return Results.deferred(
        len(plans),
        lambda i: build_dataset(plans[i], reader=reader, chunks=chunks),
        gdf.index,
        job,
        delivery=root,
    )


# -- helpers ------------------------------------------------------------------------------------
def _build_plan(plans: Sequence, reader: ReaderConfig, chunks: Any, i: int) -> Any:
    return build_dataset(plans[i], reader=reader, chunks=chunks)


def _delivery_root(url: str) -> str:
    if not isinstance(url, str) or not url.startswith("s3://") or len(url) <= len("s3://"):
        raise ValidationError(f"delivery must be an 's3://bucket/prefix' URL, got {url!r}")
    return url.rstrip("/")


def delivery_credentials(
    storage_options: Mapping[str, Any] | None,
    iam_role_arn: str | None,
) -> dict[str, Any]:
    """The ``output.delivery.s3`` credentials the service needs to write to the user's bucket.

    Taken from ``storage_options`` (``key``/``secret``, as s3fs names them), else from the
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` environment, or an IAM role to assume.
    """
    so = dict(storage_options or {})
    extras: dict[str, Any] = {}
    key = so.get("key") or so.get("aws_access_key_id")
    secret = so.get("secret") or so.get("aws_secret_access_key")
    if not (key and secret) and not iam_role_arn:
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        extras["accessKey"] = key
        extras["secretAccessKey"] = secret
    if iam_role_arn:
        extras["iamRoleARN"] = iam_role_arn
    if not extras:
        raise ValidationError(
            "the service needs credentials to write to your bucket: pass "
            "storage_options={'key': ..., 'secret': ...} or iam_role_arn=..., or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    region = so.get("client_kwargs", {}).get("region_name") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        extras["region"] = region
    return extras


def delivery_filesystem(storage_options: Mapping[str, Any] | None) -> Any:
    """An s3fs filesystem for probing the delivery bucket (listing caches off)."""
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False, **dict(storage_options or {}))


def _check_credentials(client: Client) -> None:
    """Fetch a token now, so that wrong credentials fail before anything is submitted."""
    check = getattr(client, "check_credentials", None)
    if check is not None:
        try:
            check()
        except AuthError:
            raise
        except XasyncError as exc:
            raise AuthError(f"could not obtain a token: {exc}") from None


def _write_manifest(
    fs: Any, root: str, call_token: str, specs: Sequence, plans: Sequence, series: Any = None
) -> None:
    rows = [
        {"position": i, "plan": plan.to_dict(), "body": spec.canonical_body(copy=False)}
        for i, (spec, plan) in enumerate(zip(specs, plans))
    ]
    for row, entry in zip(rows, series or ()):
        row["series"] = entry  # time series: how open_delivery rebuilds the row's Dataset
    try:
        delivery.write_manifest(fs, root, call_token, rows)
    except Exception as exc:  # OSError from s3fs, botocore's own errors (unreachable endpoint)
        raise DeliveryAccessError(
            f"cannot write to the delivery location {root}: {type(exc).__name__}: {exc}. Check "
            "that the bucket exists and is reachable, and that storage_options give write access "
            "(the service needs it too)."
        ) from None
