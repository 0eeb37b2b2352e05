"""What a call will cost, before paying: :func:`estimate`, :func:`estimate_specs`, budgets.

The estimate applies the published rules of :mod:`xasync.cost` to the requests a call would
send. It needs no network, no client and no delivery: the requests are built exactly as
``process`` builds them (with a placeholder delivery root when none is given, since the delivery
does not change the cost), and the evalscript's ``setup()`` is run locally (QuickJS) to learn its
input bands and mosaicking. Only an ``s3://`` evalscript reference is read, once, from its bucket.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from xasync import timeseries
from xasync.cost import PUFactors, request_factors
from xasync.errors import BudgetExceeded, ValidationError
from xasync.evalscript import EvalscriptError
from xasync.script_setup import script_of, setup_inputs

if TYPE_CHECKING:
    import geopandas as gpd

    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = [
    "BudgetExceeded",
    "check_budget",
    "estimate",
    "estimate_specs",
    "request_costs",
]

#: Delivery root used when estimating without one (the delivery does not change the cost).
PLACEHOLDER_DELIVERY = "s3://xasync-estimate/placeholder"

#: Columns of the frame :func:`estimate_specs` returns.
ESTIMATE_COLUMNS = [
    "requests",
    "width",
    "height",
    "input_bands",
    "samples",
    "request_pu",
    "shared_by",
    "estimated_pu",
    "exact",
]


def _spec_factors(
    spec: RequestSpec,
    *,
    scenes: int | None,
    input_bands: int | None,
    remote: int,
    storage_options: Mapping[str, Any] | None,
) -> PUFactors:
    body = spec.canonical_body(copy=False)
    out = body["output"]
    by_id = {o.id: o for o in spec.outputs}
    responses = [r for r in out["responses"] if r["identifier"] in by_id]  # not userdata.json
    if input_bands is not None:
        bands: Iterable[str] | int = int(input_bands)
        mosaicking = "SIMPLE"
        try:
            mosaicking = setup_inputs(script_of(spec, storage_options))[1]
        except EvalscriptError:
            logger.debug("setup() not evaluable; mosaicking taken as SIMPLE")
    else:
        bands, mosaicking = setup_inputs(script_of(spec, storage_options))
    return request_factors(
        out["width"],
        out["height"],
        bands,
        [by_id[r["identifier"]].sample_type for r in responses],
        format_types=[r.get("format", {}).get("type", "image/tiff") for r in responses],
        mosaicking=mosaicking,
        scenes=scenes,
        data=body["input"]["data"],
        remote=remote,
    )


def request_costs(
    specs: Sequence[RequestSpec],
    *,
    scenes: int | None = None,
    input_bands: int | None = None,
    remote: int = 0,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, PUFactors]:
    """``{row_url: PUFactors}``: each distinct request once (rows sharing a request share it).

    See :func:`estimate_specs` for the parameters.
    """
    out: dict[str, PUFactors] = {}
    for spec in specs:
        if spec.row_url not in out:
            out[spec.row_url] = _spec_factors(
                spec,
                scenes=scenes,
                input_bands=input_bands,
                remote=remote,
                storage_options=storage_options,
            )
    return out


def estimate_specs(
    specs: Sequence[RequestSpec],
    index: Iterable[Any] | None = None,
    *,
    scenes: int | None = None,
    input_bands: int | None = None,
    remote: int = 0,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The estimated cost of each row's request.

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row, as :func:`xasync.request.build_specs` returns them.
    index : iterable, optional
        The rows' index (default ``0..n-1``).
    scenes : int, optional
        Scenes per request, for ``ORBIT``/``TILE`` evalscripts (e.g. from a Catalog search);
        without it such requests count one sample and the estimate is a lower bound.
    input_bands : int, optional
        The number of input bands that count, when the evalscript's ``setup()`` cannot run
        locally.
    remote : int
        With data fusion, how many collections are served from another deployment than the
        endpoint (they count twice).
    storage_options : dict, optional
        fsspec options to read an ``s3://`` evalscript reference.

    Returns
    -------
    pandas.DataFrame
        Indexed like the rows, with ``requests`` (the request folder each row uses),
        ``width``, ``height``, ``input_bands``, ``samples``, ``request_pu`` (the whole
        request), ``shared_by`` (rows using that request), ``estimated_pu`` (the row's share:
        the column sums to the cost of the distinct requests) and ``exact`` (False: a lower
        bound). ``attrs["total_pu"]`` holds the total.

    """
    specs = list(specs)
    idx = pd.RangeIndex(len(specs)) if index is None else pd.Index(index)
    if len(idx) != len(specs):
        raise ValidationError(f"{len(idx)} index labels for {len(specs)} requests")
    costs = request_costs(
        specs,
        scenes=scenes,
        input_bands=input_bands,
        remote=remote,
        storage_options=storage_options,
    )
    urls = [s.row_url for s in specs]
    shared = pd.Series(urls).value_counts()
    rows = []
    for url in urls:
        f, n = costs[url], int(shared[url])
        rows.append(
            (url.rsplit("/", 1)[-1], f.width, f.height, f.input_bands, f.samples, f.pu, n)
            + (f.pu / n, f.exact),
        )
    frame = pd.DataFrame(rows, index=idx, columns=ESTIMATE_COLUMNS)
    frame.attrs["total_pu"] = float(sum(f.pu for f in costs.values()))
    return frame


def _check_max_pu(max_pu: Any) -> None:
    if max_pu is not None and (
        isinstance(max_pu, bool)
        or not isinstance(max_pu, (int, float))
        or not math.isfinite(max_pu)
        or max_pu <= 0
    ):
        raise ValidationError(
            f"max_pu must be a positive number of processing units, got {max_pu!r}"
        )


def _raise_if_over(total: float, max_pu: float | None, requests: int, exact: bool) -> None:
    if max_pu is not None and total > max_pu:
        raise BudgetExceeded(total, max_pu, requests, exact=exact)


def check_budget(
    specs: Sequence[RequestSpec],
    max_pu: float | None,
    *,
    skip: Iterable[str] = (),
    **keywords: Any,
) -> float:
    """Raise :class:`BudgetExceeded` when the requests to buy are estimated above ``max_pu``.

    Parameters
    ----------
    specs : sequence of RequestSpec
        The call's requests.
    max_pu : float or None
        The budget in PU; None checks nothing (the estimate is still returned).
    skip : iterable of str
        ``row_url`` of requests that will not be bought (already delivered).
    **keywords
        ``scenes``, ``input_bands``, ``remote``, ``storage_options``: see
        :func:`estimate_specs`.

    Returns
    -------
    float
        The estimated cost of the distinct requests that would be bought.

    Raises
    ------
    BudgetExceeded
        The estimate is above ``max_pu``.
    ValidationError
        ``max_pu`` is not a positive number.

    """
    _check_max_pu(max_pu)
    skipped = set(skip)
    costs = request_costs([s for s in specs if s.row_url not in skipped], **keywords)
    total = float(sum(f.pu for f in costs.values()))
    _raise_if_over(total, max_pu, len(costs), all(f.exact for f in costs.values()))
    logger.info("%d requests estimated at %.2f PU", len(costs), total)
    return total


def estimate(
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
    client: Any = None,
    chunks: Any = None,
    mask: bool = False,
    outputs: Mapping[str, Any] | None = None,
    responses: Sequence[str] | None = None,
    bounds: str = "geometry",
    iam_role_arn: str | None = None,
    resubmit_failed: bool = False,
    options: Any = None,
    max_pu: float | None = None,
    gcs_credentials: Any = None,
    scenes: int | None = None,
    input_bands: int | None = None,
    remote: int = 0,
    freq: Any = None,
    temporal: str = "orbit",
    reducer: str = "median",
    max_request_px: int = 10000,
    pack: bool = False,
    pack_max_px: int = 2500,
    check_delivery: bool | None = None,
) -> pd.DataFrame:
    """What ``process`` with the same arguments would cost, row by row; nothing is paid.

    Takes the keywords of :meth:`xasync.accessor.XasyncAccessor.process`; those that do not
    change the cost (``client``, ``chunks``, ``iam_role_arn``, ``options``, ``max_pu``,
    ``gcs_credentials``) are accepted and ignored, and ``delivery`` may be omitted.
    ``scenes``, ``input_bands`` and ``remote`` are described in :func:`estimate_specs`.
    With tiles (``max_request_px``) or packs (``pack=True``), a row's ``requests`` lists every
    request it needs and ``estimated_pu`` is its share of them
    (:func:`xasync.planned.estimate_planned`).

    **What is already bought.** With ``delivery`` (and ``storage_options`` that can list it),
    the plan is the one ``process`` would make: rows whose requests exist, rows bought alone
    before and rows delivered in packs or as tiles by earlier calls
    (:mod:`xasync.pack_reuse`) are read from those requests. Each row then says what its
    requests are (``request_state``: ``delivered``, ``running``, ``failed`` or ``new``, one per
    request in ``requests``) and ``pu_to_pay`` is its share of the new ones (failed ones too
    with ``resubmit_failed=True``): its sum, ``attrs["pu_to_pay"]``, is what ``process`` would
    be charged. ``estimated_pu`` keeps the full price. Nothing is created or written; the look
    costs a listing of the delivery root, a read of its call manifests when some row would be
    bought, and one recursive listing.

    ``check_delivery`` (estimate only): ``None`` (default) looks when ``delivery`` is given
    and, when it cannot be read (no access, unreachable), logs a warning and estimates as if
    nothing existed; ``False`` never looks (no network); ``True`` raises
    :class:`~xasync.errors.DeliveryAccessError` when it cannot look. Without the look
    ``request_state`` is ``"unknown"``, ``pu_to_pay`` equals ``estimated_pu`` (an upper
    bound) and ``attrs["delivery_checked"]`` is False. A time series (``freq``) is not looked
    at.

    With ``freq`` (a time series, :mod:`xasync.timeseries`): ``temporal="orbit"`` is one
    request per row whose samples factor is the number of scenes of the whole range (``scenes``,
    or the revisit model of :func:`xasync.timeseries.expected_scenes`: exact on the emulator,
    an estimate on the real service; ``attrs["scenes"]``); ``temporal="requests"`` is one row
    per (row, interval) request, indexed by ``(label, time)``, each at least the 10 PU minimum.

    Returns
    -------
    pandas.DataFrame
        See :func:`estimate_specs`, plus ``request_state`` and ``pu_to_pay``; indexed like
        ``gdf``.

    Raises
    ------
    xasync.ValidationError
        The same bad input ``process`` would reject, before anything is paid.
    xasync.DeliveryAccessError
        ``check_delivery=True`` and the delivery cannot be read.

    """
    from xasync.deliveryaccess import _delivery_root
    from xasync.estimate_delivery import look_at_delivery, mark_unknown, plan_looking, with_delivery
    from xasync.planned import estimate_planned, plan_call
    from xasync.request import build_specs

    del client, chunks, iam_role_arn, options, max_pu, gcs_credentials  # no cost
    so = dict(storage_options) if storage_options else None
    specs = build_specs(
        gdf,
        evalscript,
        data=data,
        time=time,
        resolution=resolution,
        size=size,
        crs=crs,
        delivery=_delivery_root(delivery) if delivery is not None else PLACEHOLDER_DELIVERY,
        outputs=outputs,
        responses=responses,
        bounds=bounds,
        mask=mask,
        storage_options=so,
        tiled=True,
    )
    series = timeseries.plan_call(specs, freq, temporal, reducer, so)
    plan: dict[str, Any] = {"max_request_px": max_request_px, "pack": pack}
    plan.update(pack_max_px=pack_max_px, storage_options=so)
    keywords: dict[str, Any] = {"scenes": scenes, "input_bands": input_bands, "remote": remote}
    if series is not None:  # tiles and packs of what is bought: the series' own requests
        return mark_unknown(
            _series_frame(series, plan_call(series.specs, **plan), gdf.index, so, keywords)
        )
    bought = look_at_delivery(delivery, so, check_delivery)
    planned, bought = plan_looking(specs, bought, check_delivery, **plan)
    if planned is not None:
        frame = estimate_planned(planned, specs, gdf.index, storage_options=so, **keywords)
    else:
        frame = estimate_specs(specs, gdf.index, storage_options=so, **keywords)
    return with_delivery(
        frame,
        specs,
        planned,
        bought,
        {"storage_options": so, **keywords},
        resubmit_failed=resubmit_failed,
        check=check_delivery,
    )


def _series_frame(
    series: Any, planned: Any, index: Any, so: Any, keywords: Mapping[str, Any]
) -> pd.DataFrame:
    """The estimate of a time series (:mod:`xasync.timeseries`), planned or not."""
    if planned is not None:
        return timeseries.estimate_series_planned(
            series, planned, index, storage_options=so, **keywords
        )
    return timeseries.estimate_series(series, index, estimate_specs, storage_options=so, **keywords)
