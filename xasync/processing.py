"""``process``: from a GeoDataFrame to lazy Datasets, one Async API request per row.

The order of work is the promise made to the user: everything that can be checked is checked
before anything is paid for (geometry, grid, time, evalscript outputs, delivery URL, credentials,
a writable bucket), then the call returns at once while a background loop submits.
"""

from __future__ import annotations

import functools
import gc
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xasync import timeseries
from xasync.bought_alone import look_before_planning
from xasync.budget import check_to_pay, validate_max_pu
from xasync.callsubmit import Call, start
from xasync.deliveryaccess import (
    check_credentials,
    delivery_extras,
    delivery_filesystem,
    delivery_root,
)
from xasync.errors import OptionError
from xasync.inputs import TIME_RULES
from xasync.lazy import build_dataset, normalize_chunks
from xasync.pack_reuse import plan_reusing
from xasync.planned import estimate_planned
from xasync.reader import ReaderConfig
from xasync.request import build_specs
from xasync.results import Results
from xasync.rowcost import row_estimates
from xasync.specrows import read_plans
from xasync.submitter import SubmitOptions
from xasync.tiledjob import planned_builder

if TYPE_CHECKING:
    import geopandas as gpd

    from xasync.client import Client

logger = logging.getLogger(__name__)


def _gc_paused(func: Any) -> Any:
    """Run ``func`` with the cyclic garbage collector paused (restored after, even on error).

    A call allocates a few objects per row and frees almost none; at 100,000 rows the
    collector's passes over the growing heap were about 1.5 s of the call and found nothing.
    """

    @functools.wraps(func)
    def paused(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_gc_paused
def process(
    gdf: gpd.GeoDataFrame,
    evalscript: str,
    *,
    data: str | Sequence[Mapping[str, Any]] = "sentinel-2-l2a",
    time: Any = None,
    resolution: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    crs: Any = None,
    delivery: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: Client | None = None,
    chunks: int | str | tuple[Any, Any] | Mapping[str, Any] | None = None,
    mask: bool = False,
    outputs: Mapping[str, Any] | None = None,
    responses: Sequence[str] | None = None,
    bounds: str = "geometry",
    iam_role_arn: str | None = None,
    resubmit_failed: bool = False,
    options: SubmitOptions | None = None,
    max_pu: float | None = None,
    freq: Any = None,
    temporal: str = "orbit",
    reducer: str = "median",
    gcs_credentials: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    max_request_px: int = 10000,
    pack: bool = False,
    pack_max_px: int = 2500,
) -> Results:
    """Submit one Async API request per distinct geometry; return lazy Datasets at once.

    The one definition of the parameters: ``gdf.xasync.process(evalscript, **kw)`` is
    ``xasync.process(gdf, evalscript, **kw)``. All parameters but ``gdf`` and ``evalscript``
    are keyword-only.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Polygon/MultiPolygon rows with a CRS; every row label must be set (not NaN).
    evalscript : str
        The evalscript text, or ``"s3://..."`` to send it as an ``evalscriptReference`` (read
        once per call with ``storage_options``: its content is part of the request identity).
    data : str or list of dict
        A collection type (``"sentinel-2-l2a"``...) or the full ``input.data`` list.
    time : str, date, datetime, Timestamp, datetime64, Period, DatetimeIndex or (start, end)
        The time range; see the rules below.
    resolution : float or (float, float)
        Pixel size in CRS units. Exactly one of ``resolution`` and ``size``.
    size : (int, int)
        ``(width, height)`` in pixels.
    crs : optional
        Request CRS: default the GeoDataFrame's, ``"utm"`` for each geometry's UTM zone (right
        across the antimeridian too), or anything pyproj accepts.
    delivery : str
        ``"s3://bucket/prefix"`` or ``"gs://bucket/prefix"`` (required); each request is
        delivered under its own deterministic prefix below it, so re-running the same call
        buys nothing again.
    storage_options : dict, optional
        s3fs (``s3://``) or gcsfs (``gs://``) options used to probe and read the delivery.
        On S3 their ``key``/``secret`` are also sent as the delivery credentials the service
        writes with. When given, they travel in the dask graph to the workers that read;
        otherwise workers use their own AWS/Google environment.
    client : xasync.Client, optional
        Endpoint and credentials; default :meth:`xasync.Client.from_env`.
    chunks : int, "auto", -1, (y, x), dict or None
        Dask chunks of ``y``/``x`` in pixels, with dask's idioms (``-1``: whole axis;
        ``"auto"``: dask's size limit in multiples of the 512 px GeoTIFF tile); default 2048.
        Checked before paying.
    mask : bool
        Pixels outside the geometry become NaN (floats), so statistics cover the field only.
    outputs : dict, optional
        ``{identifier: {"bands": n, "sampleType": "FLOAT32"}}`` when the evalscript's
        ``setup()`` cannot be evaluated locally. Checked against the delivered files when
        read (:class:`~xasync.errors.OutputMismatchError`).
    responses : list of str, optional
        Which outputs to request (default: every output of ``setup()``).
    bounds : {"geometry", "bbox"}
        Send each geometry (pixels outside are 0) or only its bounding box.
    iam_role_arn : str, optional
        A role the service assumes to write to the bucket instead of keys.
    resubmit_failed : bool
        Buy new requests for rows whose earlier delivery failed.
    options : xasync.SubmitOptions, optional
        Polling and retry tuning.
    max_pu : float, optional
        A budget in processing units: :class:`~xasync.errors.BudgetExceeded` is raised before
        anything is paid for when the requests the call would buy are estimated above it.
        Requests the delivery already holds (delivered, running or claimed by another call,
        failed without ``resubmit_failed``) are not bought again and do not count: the check
        is against ``gdf.xasync.estimate(..., delivery=...).attrs["pu_to_pay"]``.
    freq : str, pandas offset or list of (start, end), optional
        A time series per row: ``"10D"``, ``"W"``, ``"MS"``... cuts ``time`` into intervals
        starting at ``pd.date_range(start, end, freq=freq)`` (or give the intervals). Each
        Dataset then has a ``time`` dimension (interval starts; ``time_end`` beside it), known
        before delivery. See :mod:`xasync.temporal`.
    temporal : {"orbit", "requests"}
        With ``freq``: ``"orbit"`` buys one multi-temporal request per row (the evalscript, a
        single-scene V3 script, is wrapped; its outputs become FLOAT32, NaN where no scene is
        valid; a ``scenes`` coordinate counts the scenes of each interval); ``"requests"`` buys
        one ordinary request per row and interval (for scripts that cannot be wrapped, e.g.
        data fusion; the result is then a :class:`xasync.series_results.SeriesResults`).
    reducer : {"median", "mean", "min", "max", "first", "last", "count"}
        With ``temporal="orbit"``: how each interval's valid scenes (``dataMask``) become one
        value (``"last"``: the most recent one, as a request over that interval alone returns).
    gcs_credentials : str, os.PathLike or dict, optional
        For a ``gs://`` delivery (required there): the path of the service-account JSON the
        service writes with, or its content as a dict. Sent base64-encoded as
        ``output.delivery.gs.credentials``; never logged, never in the dask graph (readers use
        ``storage_options``).
    max_request_px : int
        Largest request side in pixels (at most 10000, the service's limit): a row whose grid
        is larger is bought as tiles and still returned as one Dataset on its own grid (see
        the "Tiling and packing" guide).
    pack : bool
        Buy small rows that differ only by their bounds together, in requests of several
        geometries, where that costs less; each row is a window of its request (use
        ``mask=True`` to keep only its own geometry's pixels).
    pack_max_px : int
        Largest side of a packed request in pixels.

    Returns
    -------
    xasync.Results
        Lazy Datasets aligned with the rows, and their requests' states.

    Raises
    ------
    xasync.ValidationError
        Bad input (a typed subclass naming the problem), before any request is sent.
    xasync.ConfigError, xasync.AuthError, xasync.TransportError
        Missing or refused Sentinel Hub credentials, or an unreachable service, before any
        request is sent.

    Notes
    -----
    A request is identified by what is bought: rows with the same request (same geometry,
    grid, time, data and script) share it, and row labels or order play no part.

    Each call leaves a manifest under ``<delivery>/_xasync/`` (what ``open_delivery`` and
    ``xasync status`` read) before any of its requests is created. A call of 10,000 rows or
    more checks at once that the location takes a write, returns, and writes the manifest in the background: if that write fails, nothing
    is bought, every row fails and ``Results.wait`` raises the
    :class:`~xasync.errors.DeliveryAccessError`.
    """
    from xasync.client import Client  # deferred: keeps ``import xasync`` light

    if delivery is None:
        raise OptionError("delivery='s3://bucket/prefix' (or 'gs://...') is required")
    root = delivery_root(delivery)
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
        tiled=True,
    )
    for shape in {spec.grid.shape for spec in specs}:
        normalize_chunks(chunks, shape)  # bad chunks: an OptionError before paying
    fs = delivery_filesystem(storage_options, root)
    # what exists (one listing of the root): rows bought alone or in packs/tiles are reused,
    # and the budget counts only the requests to buy (a series looks for the budget only)
    look = freq is None or max_pu is not None
    alone = look_before_planning(fs, root, required=pack is True and freq is None) if look else None
    specs, planned, series, estimated = _plan_requests(
        specs,
        gdf.index,
        (max_request_px, pack, pack_max_px, alone),
        (freq, temporal, reducer),
        (max_pu, resubmit_failed),
        storage_options,
    )
    s3_extras = delivery_extras(root, storage_options, iam_role_arn, gcs_credentials)
    client = client if client is not None else Client.from_env()
    client.config.check_delivery(root, iam_role_arn=iam_role_arn)
    check_credentials(client)

    plans = read_plans(specs)
    call = Call(
        fs=fs,
        root=root,
        specs=specs,
        plans=plans,
        labels=list(gdf.index) if series is None else [s.label for s in specs],
        series=series,
        planned=planned,
        planning=() if planned is None else (max_request_px, pack, pack_max_px),
        s3_extras=s3_extras,
        client=client,
        options=options,
        resubmit_failed=resubmit_failed,
    )
    job = start(call)  # big calls: the manifest is written after this returns
    return _lazy_results(call, job, chunks, gdf.index, estimated, storage_options)


process.__doc__ = (process.__doc__ or "") + TIME_RULES


# -- helpers ------------------------------------------------------------------------------------
def _lazy_results(
    call: Call,
    job: Any,
    chunks: Any,
    index: Any,
    estimated: list[float],
    storage_options: Mapping[str, Any] | None,
) -> Results:
    """The call's lazy Datasets over ``job``: one per row (or per row and interval)."""
    reader = ReaderConfig(storage_options=dict(storage_options) if storage_options else None)
    if call.planned is None:
        build = functools.partial(_build_row, call.plans, reader, chunks)
    else:
        build = planned_builder(call.planned, call.specs, call.plans, reader=reader, chunks=chunks)
    logger.debug("%d rows handed to the submitter under %s", len(call.specs), call.root)
    if call.series is not None:
        return timeseries.make_results(
            call.series,
            build,
            index,
            job,
            delivery=call.root,
            reader=reader,
            estimated_pu=estimated,
        )
    return Results.deferred(
        len(call.plans), build, index, job, delivery=call.root, estimated_pu=estimated
    )


def _build_row(plans: Sequence[Any], reader: ReaderConfig, chunks: Any, i: int) -> Any:
    return build_dataset(plans[i], reader=reader, chunks=chunks)


def _plan_requests(
    specs: list[Any],
    index: Any,
    planning: tuple[int, bool, int, Any],
    temporal_args: tuple[Any, str, str],
    budget: tuple[float | None, bool],
    storage_options: Mapping[str, Any] | None,
) -> tuple[list[Any], Any, Any, list[float]]:
    """Rows -> what is bought: tiles and packs, or a time series; the estimate and budget check.

    ``planning`` ends with what exists under the root (:class:`~xasync.bought_alone.Bought` or
    None); ``budget`` is ``(max_pu, resubmit_failed)``: the budget counts the requests to buy,
    not those that exist (:func:`xasync.budget.check_to_pay`, as ``estimate``'s ``pu_to_pay``).
    Returns ``(specs, planned, series, estimated_pu per row)``; ``planned``/``series`` are None
    when each row is its own request.
    """
    max_request_px, pack, pack_max_px, alone = planning
    max_pu, resubmit_failed = budget
    validate_max_pu(max_pu)
    series = timeseries.plan_call(specs, *temporal_args, storage_options)
    bought = specs if series is None else series.specs  # a series: wrapped or per interval
    planned = plan_reusing(  # tiles, packs, earlier requests (None: one request per spec)
        bought,
        max_request_px=max_request_px,
        pack=pack,
        pack_max_px=pack_max_px,
        storage_options=storage_options,
        bought=alone if series is None else None,  # a series reads no earlier packs or tiles
    )
    scenes = series.scenes() if series is not None and series.temporal == "orbit" else None
    if planned is not None:
        if series is None:
            frame = estimate_planned(planned, specs, index, storage_options=storage_options)
        else:
            frame = timeseries.estimate_series_planned(
                series, planned, index, storage_options=storage_options
            )
        requests, total = planned.requests, float(frame.attrs["total_pu"])
        estimated = [float(v) for v in frame["estimated_pu"]]
    else:
        estimated = row_estimates(bought, None, storage_options=storage_options, scenes=scenes)
        requests, total = bought, math.fsum(estimated)
    check_to_pay(
        requests,
        max_pu,
        alone,
        total=total,
        resubmit_failed=resubmit_failed,
        storage_options=storage_options,
        scenes=scenes,
    )
    return bought, planned, series, estimated
