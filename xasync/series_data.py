"""The Datasets of a time series (issue 14): ``time``/``time_end`` coordinates, the reshaped
variables of an ``"orbit"`` request, the lazy ``scenes`` coordinate, ``"requests"`` stacked.

Nothing here reads pixels: the ``scenes`` coordinate is a dask task hanging on the row's
await task, reading ``userdata.json`` when computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from xasync.temporal import Interval, scene_counts

logger = logging.getLogger(__name__)

__all__ = ["concat_series", "series_coords", "series_dataset"]


def series_coords(intervals: Sequence[Interval]) -> tuple[np.ndarray, np.ndarray]:
    """``(time, time_end)`` coordinate values, ``datetime64[ns]``."""
    starts = np.array([iv.start.to_datetime64() for iv in intervals], dtype="datetime64[ns]")
    ends = np.array([iv.end.to_datetime64() for iv in intervals], dtype="datetime64[ns]")
    return starts, ends


def _band_names(outputs: Sequence[Any]) -> dict[str, str]:
    multi = [o for o in outputs if o.bands > 1]
    if len({o.bands for o in multi}) <= 1:
        return {o.id: "band" for o in multi}
    return {o.id: f"{o.id}_band" for o in multi}


def _read_scene_counts(outputs: dict[str, str], reader: Any, n: int) -> np.ndarray:
    """Task: the per-interval scene counts from the delivered ``userdata.json`` (-1: unknown)."""
    from xasync.reader import filesystem_for

    url = next(iter(outputs.values()))
    where = f"{url.rsplit('/', 1)[0]}/userdata.json"
    try:
        fs = filesystem_for(where, reader)
        with fs.open(where, "rb") as fh:
            user = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        logger.warning("no scene counts: cannot read %s (%s)", where, type(exc).__name__)
        user = {}
    return scene_counts(user, n)


def _scenes_array(ds: Any, reader: Any, n: int) -> Any:
    """A lazy ``(time,)`` int32 array of scene counts hanging on the row's await task."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    graph = next(iter(ds.data_vars.values())).data.dask
    # the row's one request (xasync.lazy: "await-delivery-<tok>") or, for a row read from
    # tiles or a pack (xasync.mosaic: "await-<tok>"), its first request: the scenes of a tile
    # or a pack are those of the row
    # (the await task is in the layer of the output's array: xasync.rowgraph)
    await_key = min(k for k in graph if isinstance(k, str) and k.startswith("await-"))
    name = "scenes-" + hashlib.sha256(f"{await_key}-{n}".encode()).hexdigest()[:24]
    layer: dict[Any, Any] = {(name, 0): (_read_scene_counts, await_key, reader, n)}
    layer[await_key] = graph[await_key]
    hlg = HighLevelGraph({name: layer}, {name: set()})
    return da.Array(hlg, name, ((n,),), dtype=np.int32)


def series_dataset(
    ds: Any, intervals: Sequence[Interval], user_outputs: Sequence[Any], reader: Any
) -> Any:
    """The row Dataset of an ``"orbit"`` request with a ``time`` dimension.

    ``ds`` is :func:`xasync.lazy.build_dataset`'s Dataset of the wrapped request (variables
    with ``intervals x bands`` bands, interval major); nothing is read.
    """
    import xarray as xr

    n = len(intervals)
    starts, ends = series_coords(intervals)
    bands_dim = _band_names(user_outputs)
    by_id = {o.id: o for o in user_outputs}
    coords: dict[str, Any] = {
        "time": starts,
        "time_end": ("time", ends),
        "y": ds["y"],
        "x": ds["x"],
        "spatial_ref": ds["spatial_ref"],
        "scenes": ("time", _scenes_array(ds, reader, n)),
    }
    data_vars = {}
    for name, var in ds.data_vars.items():
        b = by_id[name].bands
        data = var.data if var.ndim == 3 else var.data[None]
        data = data.reshape((n, b, *data.shape[1:]))
        if b == 1:
            dims: tuple[str, ...] = ("time", "y", "x")
            data = data[:, 0]
        else:
            dims = ("time", bands_dim[name], "y", "x")
            coords[bands_dim[name]] = np.arange(1, b + 1)
        data_vars[name] = xr.Variable(dims, data, attrs=dict(var.attrs), encoding=var.encoding)
    out = xr.Dataset(data_vars, coords=coords, attrs=dict(ds.attrs))
    out.encoding.update(ds.encoding)  # the row's ids (encoding["xasync"]: token, row_url, label)
    out["scenes"].attrs["long_name"] = "scenes acquired in the interval (from userdata.json)"
    return out


def concat_series(datasets: Sequence[Any], intervals: Sequence[Interval]) -> Any:
    """The row Dataset of ``"requests"``: one Dataset per interval stacked along ``time``."""
    import xarray as xr

    starts, ends = series_coords(intervals)
    out = xr.concat(
        [d.drop_vars("spatial_ref") for d in datasets],
        dim="time",
        data_vars="all",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="drop_conflicts",
    )
    out = out.assign_coords(
        time=starts, time_end=("time", ends), spatial_ref=datasets[0]["spatial_ref"]
    )
    for name in out.data_vars:
        out[name].encoding.update(datasets[0][name].encoding)
    ids = [d.encoding.get("xasync", {}) for d in datasets]
    row = {"row_urls": [i.get("row_url") for i in ids], "tokens": [i.get("token") for i in ids]}
    if "label" in ids[0]:
        row["label"] = ids[0]["label"]
    out.encoding["xasync"] = row  # one request per interval: their ids, in time order
    out.attrs["time_from"] = intervals[0].time_range[0]
    out.attrs["time_to"] = intervals[-1].time_range[1]
    return out


def _interval_dicts(intervals: Sequence[Interval]) -> list[list[Any]]:
    return [[iv.start.isoformat(), iv.end.isoformat(), bool(iv.closed)] for iv in intervals]


def manifest_entry(
    temporal: str, intervals: Sequence[Interval], outputs: Sequence[Any], interval: int | None
) -> dict[str, Any]:
    """What a delivery manifest row keeps so that ``open_delivery`` rebuilds the series."""
    return {
        "temporal": temporal,
        "intervals": _interval_dicts(intervals),
        "outputs": [[o.id, int(o.bands)] for o in outputs],
        "interval": interval,
    }


def reattached_dataset(entry: dict[str, Any], ds: Any, reader: Any) -> Any:
    """The Dataset of a re-attached request that was part of a time series.

    ``"orbit"``: the row's series (:func:`series_dataset`); ``"requests"``: the request's one
    interval as a ``time`` dimension of length 1.
    """
    import pandas as pd

    from xasync.evalscript import OutputSpec

    intervals = [
        Interval(pd.Timestamp(a), pd.Timestamp(b), bool(c)) for a, b, c in entry["intervals"]
    ]
    if entry.get("temporal") == "orbit":
        outputs = [OutputSpec(i, int(b), "FLOAT32", "float32") for i, b in entry["outputs"]]
        return series_dataset(ds, intervals, outputs, reader)
    k = int(entry["interval"])
    starts, ends = series_coords(intervals[k : k + 1])
    out = ds.expand_dims(time=starts)
    return out.assign_coords(time_end=("time", ends))
