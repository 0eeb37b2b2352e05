"""Time series in ``process``/``estimate`` (issue 14): the specs bought and the row Datasets.

- ``temporal="orbit"``: :func:`orbit_spec` turns a row's spec into one multi-temporal request
  (the evalscript wrapped by :func:`xasync.temporal.wrap_evalscript`, the time range spanning
  every interval, a ``userdata`` JSON response); :func:`series_dataset` turns its lazy Dataset
  (``interval x band`` bands) into ``(time, y, x)`` / ``(time, band, y, x)`` variables, with a
  ``scenes`` coordinate read lazily from ``userdata.json``.
- ``temporal="requests"``: :func:`interval_specs` makes one ordinary request per interval;
  :func:`concat_series` stacks their Datasets along ``time``.

Either way the ``time`` coordinate (interval starts, ``datetime64[ns]``) and ``time_end`` are
known before anything is delivered.

Tiles and packs (:mod:`xasync.planned`) are planned over the requests a series buys: under
``"orbit"`` a row larger than ``max_request_px`` is one wrapped multi-temporal request per tile
(the tiles' ``interval x band`` bands mosaicked, so each time step is the mosaic of the tiles),
and ``pack=True`` packs rows into one wrapped request per pack; under ``"requests"`` each
(row, interval) request is tiled, and rows of the same interval are packed together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from xasync.series_data import concat_series, series_coords, series_dataset
from xasync.temporal import (
    Interval,
    span,
    wrap_evalscript,
    wrapped_outputs,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SeriesPlan",
    "estimate_series",
    "expected_scenes",
    "interval_specs",
    "make_results",
    "orbit_spec",
    "plan_call",
    "prepare",
]

#: Revisit model of the scene count estimate: ``(first acquisition, period in days)`` per
#: collection family. It is the emulator's documented calendar (``docs/emulator.md``); for the
#: real service it is an estimate (clouds, orbits and coverage make the true count differ).
REVISIT = {
    "sentinel-2": ("2017-01-01T10:00:00", 5.0),
    "hls": ("2017-01-01T10:00:00", 5.0),
    "s2l": ("2017-01-01T10:00:00", 5.0),
    "sentinel-1": ("2017-01-02T05:30:00", 6.0),
    "landsat": ("2017-01-03T10:15:00", 8.0),
}
DAILY = ("2017-01-01T12:00:00", 1.0)


def expected_scenes(collection: str, time_range: tuple[str, str]) -> int:
    """Scenes a multi-temporal request over ``time_range`` is expected to process.

    The model is the emulator's calendar (Sentinel-2/HLS every 5 days, Sentinel-1 every 6,
    Landsat every 8, the DEM one static scene, anything else daily): exact on the emulator
    (unless ``maxCloudCoverage`` drops cloudy scenes), an estimate on the real service.
    """
    import pandas as pd

    name = collection.lower()
    if name == "dem":
        return 1
    epoch_s, days = next((v for k, v in REVISIT.items() if name.startswith(k)), DAILY)
    epoch, period = pd.Timestamp(epoch_s), pd.Timedelta(days=days)
    t0, t1 = (pd.Timestamp(t).tz_localize(None) for t in time_range)
    first = math.ceil((t0 - epoch) / period)
    last = math.floor((t1 - epoch) / period)
    return max(0, last - first + 1)


def _with_time(data: Sequence[dict[str, Any]], time_range: tuple[str, str]) -> tuple[dict, ...]:
    out = []
    for item in data:
        d = json.loads(json.dumps(item))
        d.setdefault("dataFilter", {})["timeRange"] = {"from": time_range[0], "to": time_range[1]}
        out.append(d)
    return tuple(out)


def orbit_spec(spec: Any, wrapped: str, intervals: Sequence[Interval]) -> Any:
    """The one multi-temporal request of a row (``wrapped``: from :func:`wrap_evalscript`)."""
    rng = span(intervals)
    return dataclasses.replace(
        spec,
        evalscript=wrapped,
        evalscript_ref=None,
        evalscript_digest=None,  # the wrapped script is sent inline: the body holds it
        outputs=wrapped_outputs(spec.outputs, len(intervals)),
        data=_with_time(spec.data, rng),
        time=rng,
        userdata=True,
    )


def interval_specs(spec: Any, intervals: Sequence[Interval]) -> list[Any]:
    """One ordinary request per interval (``temporal="requests"``), in time order."""
    return [
        dataclasses.replace(spec, data=_with_time(spec.data, iv.time_range), time=iv.time_range)
        for iv in intervals
    ]


@dataclasses.dataclass
class SeriesPlan:
    """What a time-series call buys and how each row's Dataset is made from the deliveries.

    Attributes
    ----------
    intervals : tuple of Interval
    temporal : str
        ``"orbit"`` (``specs[i]`` is row ``i``'s one request) or ``"requests"`` (row ``i``'s
        requests are ``specs[i * n : (i + 1) * n]``, ``n`` intervals).
    specs : list of RequestSpec
        The requests to buy, in that order.
    user_outputs : tuple of OutputSpec
        The outputs of the user's evalscript (one interval's bands).
    """

    intervals: tuple[Interval, ...]
    temporal: str
    specs: list[Any]
    user_outputs: tuple[Any, ...]
    rows: int

    def requests_of(self, row: int) -> range:
        """Positions in :attr:`specs` of row ``row``'s requests."""
        n = 1 if self.temporal == "orbit" else len(self.intervals)
        return range(row * n, (row + 1) * n)

    def row_dataset(self, row: int, build: Any, reader: Any) -> Any:
        """Row ``row``'s Dataset with a ``time`` dimension; ``build(j)`` is spec ``j``'s."""
        if self.temporal == "orbit":
            return series_dataset(build(row), self.intervals, self.user_outputs, reader)
        return concat_series([build(j) for j in self.requests_of(row)], self.intervals)

    def scenes(self) -> int:
        """Scenes one ``"orbit"`` request is expected to process (see :func:`expected_scenes`)."""
        first = self.specs[0]
        return expected_scenes(str(first.data[0].get("type", "")), first.time)


def prepare(
    specs: Sequence[Any],
    *,
    freq: Any,
    temporal: str = "orbit",
    reducer: str = "median",
    storage_options: dict[str, Any] | None = None,
) -> SeriesPlan:
    """Turn the rows' ordinary specs into the requests of a time series (nothing is paid).

    Parameters
    ----------
    specs : sequence of RequestSpec
        From :func:`xasync.request.build_specs` (their common time range is cut).
    freq : str, offset or list of (start, end)
        See :func:`xasync.temporal.make_intervals`.
    temporal : {"orbit", "requests"}
    reducer : str
        See :data:`xasync.temporal.REDUCERS` (``"orbit"`` only).
    storage_options : dict, optional
        fsspec options to read an ``s3://`` evalscript reference (it is wrapped and sent inline).

    Raises
    ------
    TemporalError
        Bad ``freq``/``temporal``/``reducer``, or a script that cannot be wrapped.

    """
    from xasync.temporal import TemporalError, check_options, make_intervals

    check_options(temporal, reducer)
    specs = list(specs)
    intervals = make_intervals(specs[0].time, freq)
    user_outputs = tuple(specs[0].outputs)
    if temporal == "orbit":
        if len(specs[0].data) > 1:
            raise TemporalError(
                "a data fusion evalscript (several input.data items) cannot be wrapped; use "
                "temporal='requests' (one request per interval)"
            )
        text = specs[0].evalscript
        if text is None and specs[0].evalscript_ref is not None:
            from xasync.evalscript import load_evalscript

            text = load_evalscript(specs[0].evalscript_ref, storage_options)
        wrapped = wrap_evalscript(text or "", user_outputs, intervals, reducer)
        bought = [orbit_spec(s, wrapped, intervals) for s in specs]
    else:
        bought = [r for s in specs for r in interval_specs(s, intervals)]
    logger.debug(
        "time series: %d intervals, %s, %d requests for %d rows",
        len(intervals),
        temporal,
        len(bought),
        len(specs),
    )
    return SeriesPlan(intervals, temporal, bought, user_outputs, len(specs))


def request_index(plan: SeriesPlan, index: Any) -> Any:
    """The index of the bought requests: the rows' (``"orbit"``), or ``(label, time)`` pairs."""
    import pandas as pd

    if plan.temporal == "orbit":
        return index
    starts, _ = series_coords(plan.intervals)
    return pd.MultiIndex.from_product([index, starts], names=[index.name or "row", "time"])


def make_results(
    plan: SeriesPlan,
    build: Any,
    index: Any,
    job: Any,
    *,
    delivery: str,
    reader: Any,
    estimated_pu: Sequence[float] | None = None,
) -> Any:
    """The call's results: row Datasets with a ``time`` dimension.

    ``build(j)`` is the lazy Dataset of bought request ``j`` (``plan.specs[j]``).
    """
    from xasync.results import Results
    from xasync.series_results import SeriesResults

    extra = {} if estimated_pu is None else {"estimated_pu": estimated_pu}
    if plan.temporal == "orbit":
        return Results.deferred(
            len(plan.specs),
            lambda i: plan.row_dataset(i, build, reader),
            index,
            job,
            delivery=delivery,
            **extra,
        )
    inner = Results.deferred(
        len(plan.specs), build, request_index(plan, index), job, delivery=delivery, **extra
    )
    return SeriesResults(inner, index, lambda i: plan.row_dataset(i, inner.__getitem__, reader))


def plan_call(
    specs: Sequence[Any],
    freq: Any,
    temporal: str,
    reducer: str,
    storage_options: Any = None,
) -> SeriesPlan | None:
    """``process``/``estimate`` hook: the time-series plan, or None without ``freq``.

    Raises :class:`~xasync.temporal.TemporalError` for ``temporal``/``reducer`` without
    ``freq`` or with unknown values.
    """
    from xasync.temporal import TemporalError, check_options

    check_options(temporal, reducer)
    if freq is None:
        if temporal != "orbit" or reducer != "median":
            raise TemporalError("temporal= and reducer= make a time series: give freq= too")
        return None
    so = dict(storage_options) if storage_options else None
    return prepare(specs, freq=freq, temporal=temporal, reducer=reducer, storage_options=so)


def estimate_series_planned(plan: SeriesPlan, planned: Any, index: Any, **keywords: Any) -> Any:
    """The estimate of a series bought as tiles or packs (see :func:`estimate_series`).

    One line per row (``"orbit"``) or per (row, interval) request (``"requests"``), as without
    tiles; ``requests`` lists each line's tiles or pack and ``estimated_pu`` is its share.
    """
    from xasync.planned import estimate_planned

    if plan.temporal == "orbit" and keywords.get("scenes") is None:
        keywords["scenes"] = plan.scenes()
    frame = estimate_planned(planned, plan.specs, None, **keywords)
    frame.index = request_index(plan, index)  # the rows', or (label, time) pairs
    if plan.temporal == "orbit":
        frame.attrs["scenes"] = int(keywords["scenes"])
    frame.attrs["temporal"] = plan.temporal
    frame.attrs["intervals"] = len(plan.intervals)
    return frame


def estimate_series(plan: SeriesPlan, index: Any, estimate_specs: Any, **keywords: Any) -> Any:
    """The estimate of a time-series call (``estimate_specs`` from :mod:`xasync.estimate`).

    ``"orbit"``: one row per field, the samples factor being the scenes of the whole range
    (``keywords["scenes"]`` or :meth:`SeriesPlan.scenes`, the emulator's calendar: exact there,
    an estimate on the real service). ``"requests"``: one row per (field, interval) request,
    each at least the 10 PU minimum; ``frame.groupby(level=0).sum()`` gives the fields.
    """
    if plan.temporal == "orbit":
        given = keywords.get("scenes")
        keywords["scenes"] = plan.scenes() if given is None else given
        frame = estimate_specs(plan.specs, index, **keywords)
        frame.attrs["scenes"] = int(keywords["scenes"])
        frame.attrs["scenes_from"] = (
            "given" if given is not None else "revisit model (exact on the emulator)"
        )
    else:
        frame = estimate_specs(plan.specs, None, **keywords)
        frame.index = request_index(plan, index)  # (label, time), one line per request
    frame.attrs["temporal"] = plan.temporal
    frame.attrs["intervals"] = len(plan.intervals)
    return frame


def manifest_entries(plan: SeriesPlan) -> list[dict[str, Any]]:
    """One ``series`` entry per bought request, for the delivery manifest (``open_delivery``)."""
    from xasync.series_data import manifest_entry

    n = len(plan.intervals)
    return [
        manifest_entry(
            plan.temporal,
            plan.intervals,
            plan.user_outputs,
            None if plan.temporal == "orbit" else j % n,
        )
        for j in range(len(plan.specs))
    ]
