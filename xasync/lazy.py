"""The lazy Dataset of one row: a two-layer dask graph and its xarray/rioxarray wrapping.

Graph of one row (stackstac's two-layer model)::

    await-delivery-<tok>            one task: {identifier: url} once the row is delivered
       ├── <identifier>-<tok> (0, 0, 0)   chunk tasks: read_window of the delivered file
       ├── <identifier>-<tok> (0, 0, 1)
       └── ...

The await task is :func:`xasync.awaiting.await_delivery`: it asks the ledger of this process
(filled by its submitter), else polls S3, up to ``wait_timeout`` (then
:class:`~xasync.errors.DeliveryTimeout`). An ``error.json`` raises
:class:`~xasync.errors.ProcessingError` with the service's message, and
only the chunks of that row fail. Building the Dataset touches no network: coordinates, CRS,
bands and dtypes all come from the :class:`~xasync.plan.ReadPlan`.

Keys are an MD5 digest of the ``dask.base.tokenize`` of the call's shared parts (tokenized once:
outputs, the reader config as a digest, so no option value appears in a key) and of the ``repr``
of the row's own short tuple (request token, grid, label, chunks, wait settings) and its mask.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from dask.base import tokenize
from xarray.core.indexing import PandasIndexingAdapter

from xasync.awaiting import await_delivery
from xasync.errors import ValidationError
from xasync.plan import ReadPlan
from xasync.reader import ReaderConfig
from xasync.rowgraph import (
    DEFAULT_CHUNK,
    RowLayers,
    band_dims,
    lazy_variable,
    normalize_chunks,
    out_dtype,
)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CHUNK", "DEFAULT_WAIT_TIMEOUT", "build_dataset", "normalize_chunks"]

#: Default cap on waiting for one delivery, in seconds.
DEFAULT_WAIT_TIMEOUT = 24 * 3600.0
#: Default first polling interval (seconds); it grows by 1.5x up to MAX_POLL_INTERVAL.
DEFAULT_POLL_INTERVAL = 2.0
MAX_POLL_INTERVAL = 60.0


# --------------------------------------------------------------------------- tasks


def graph_token(plan: ReadPlan, reader: ReaderConfig, *parts: Any) -> str:
    """Deterministic graph-key token of a row: an MD5 digest of all that shapes its tasks
    (plain values only, so the token is the same in every process), as ``dask.base.tokenize``
    hashes a string, without its dispatch (a tenth of the cost: 100,000 rows, about 1 s).

    What the rows of a call share (outputs, the reader config as its digest, so no option value
    reaches a key, and whether values are masked) is tokenized once (:func:`_shared_token`);
    per row only that token, the ``repr`` of a short tuple of plain values (request token and
    folder, grid, label, time range, ``parts``: chunks, wait settings, sources) and the mask
    geometry. ``repr`` of ints, floats, strings and tuples of them is the same in every process.
    """
    g = plan.grid
    masked = plan.mask_wkb is not None
    shared = _shared_token(tuple(plan.outputs), reader.__dask_tokenize__(), masked)
    row = (
        plan.token,
        plan.row_url,
        (g.epsg, g.bbox, g.width, g.height),
        repr(plan.label),
        plan.time_range,
        parts,
    )
    digest = hashlib.md5(f"{shared} {row!r}".encode(), usedforsecurity=False)
    if plan.mask_wkb is not None:  # masked or not is part of ``shared``
        digest.update(plan.mask_wkb)
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _shared_token(outputs: tuple, reader_digest: str, masked: bool) -> str:
    """``tokenize`` of what the rows of a call share (cached: one value per call)."""
    described = tuple((o.identifier, o.bands, o.dtype, o.nodata, o.extension) for o in outputs)
    return tokenize("xasync-row", described, reader_digest, masked)


def validate_plan(plan: ReadPlan, wait_timeout: float, poll_interval: float) -> None:
    if not isinstance(plan, ReadPlan):
        raise ValidationError(f"build_dataset needs a ReadPlan, got {type(plan).__name__}")
    if plan.grid.width <= 0 or plan.grid.height <= 0:
        raise ValidationError(f"empty grid {plan.grid.width}x{plan.grid.height}")
    outputs_info(plan.outputs, plan.mask_wkb is not None)
    if not wait_timeout > 0 or not poll_interval > 0:
        raise ValidationError("wait_timeout and poll_interval must be positive")


def outputs_info(outputs: Any, masked: bool) -> tuple[np.dtype, tuple[str, ...], dict]:
    """``(widest value dtype, identifiers, band dim per output)`` of checked outputs; cached,
    as the rows of a call share their outputs (the dict returned is shared: read it only)."""
    try:
        return _cached_outputs_info(outputs, masked)
    except TypeError:  # unhashable outputs (e.g. a list): checked each time
        return _outputs_info_of(tuple(outputs), masked)


@functools.lru_cache(maxsize=256)
def _cached_outputs_info(outputs: tuple, masked: bool) -> tuple[np.dtype, tuple[str, ...], dict]:
    return _outputs_info_of(outputs, masked)


def _outputs_info_of(outputs: tuple, masked: bool) -> tuple[np.dtype, tuple[str, ...], dict]:
    if not outputs:
        raise ValidationError("the plan has no raster outputs")
    ids = tuple(o.identifier for o in outputs)
    if len(set(ids)) != len(ids):
        raise ValidationError(f"duplicate output identifiers {list(ids)}")
    if len({o.extension for o in outputs}) != 1:
        raise ValidationError("outputs with different file extensions are not supported")
    for o in outputs:
        if o.bands < 1:
            raise ValidationError(f"output {o.identifier!r} has {o.bands} bands")
        np.dtype(o.dtype)
    widest = max((out_dtype(o, masked) for o in outputs), key=lambda d: d.itemsize)
    return widest, ids, band_dims(outputs)


def build_dataset(
    plan: ReadPlan,
    *,
    reader: ReaderConfig,
    chunks: Any = None,
    wait_timeout: float | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The lazy Dataset of one row; touches no network.

    Parameters
    ----------
    plan : ReadPlan
        Grid, outputs, delivery URL, label, time range and optional mask geometry of the row.
    reader : ReaderConfig
        How the chunk tasks reach S3 (travels in the graph; see its notes on secrets).
    chunks : int, "auto", -1, (y, x), {"y": .., "x": ..} or None
        Dask chunks of ``y``/``x`` (see :func:`normalize_chunks`); default 2048 x 2048, all
        bands in one chunk.
    wait_timeout : float, optional
        Seconds the await task waits for the delivery before
        :class:`~xasync.errors.DeliveryTimeout`; default :data:`DEFAULT_WAIT_TIMEOUT`.
    poll_interval : float
        First S3 polling interval in seconds; it grows 1.5x per poll up to 60 s.
    attrs : mapping, optional
        Extra Dataset attributes (must not hold secrets).

    Notes
    -----
    ``ds.attrs`` holds only what neighbouring rows of one call share (``time_from``,
    ``time_to``), so ``xr.combine_by_coords`` of neighbouring rows works; the row's own
    ``token``, ``row_url`` and ``label`` are in ``ds.encoding["xasync"]``.

    Returns
    -------
    xarray.Dataset
        One variable per raster output named by its identifier, dims ``(band, y, x)`` or
        ``(y, x)`` for one band (``<identifier>_band`` when multi-band outputs differ in band
        count), pixel-centre ``x``/``y`` coords, ``spatial_ref`` (rioxarray), nodata via
        rioxarray. With ``plan.mask_wkb`` set, values are float (float32 for up to 16-bit
        inputs) and NaN outside the geometry and at nodata.

    """
    timeout = DEFAULT_WAIT_TIMEOUT if wait_timeout is None else float(wait_timeout)
    validate_plan(plan, timeout, float(poll_interval))
    grid = plan.grid
    widest, identifiers, dims_of = outputs_info(plan.outputs, plan.mask_wkb is not None)
    ychunks, xchunks = normalize_chunks(chunks, grid.shape, widest)
    extension = plan.outputs[0].extension
    tok = graph_token(plan, reader, (ychunks, xchunks), timeout, float(poll_interval))
    await_key = f"await-delivery-{tok}"
    await_layer = {
        await_key: (
            await_delivery,
            plan.token,
            plan.row_url,
            identifiers,
            extension,
            plan.label,
            reader,
            timeout,
            float(poll_interval),
        ),
    }
    rows = RowLayers(plan, reader, await_key, await_layer, ychunks, xchunks)
    coords: dict[str, Any] = {"y": grid.y_coords(), "x": grid.x_coords()}
    data_vars = {}
    for output in plan.outputs:
        dim = dims_of.get(output.identifier)
        if dim is not None:
            coords[dim] = np.arange(1, output.bands + 1)
        data_vars[output.identifier] = rows.variable(output, tok, dim)
    ds = assemble_dataset(data_vars, coords, grid)
    if plan.time_range:
        ds.attrs["time_from"], ds.attrs["time_to"] = (str(t) for t in plan.time_range)
    if attrs:
        ds.attrs.update(attrs)
    # Row identifiers differ between rows: in attrs they would make xr.combine_by_coords of
    # neighbouring rows fail on conflicting values, so they live in the encoding.
    row = {"token": plan.token, "row_url": plan.row_url}
    if plan.label is not None:
        row["label"] = attr_value(plan.label)
    ds.encoding["xasync"] = row
    return ds


@functools.lru_cache(maxsize=256)
def _crs_attrs(epsg: int) -> dict[str, Any]:
    """The CRS part of the ``spatial_ref`` attrs rioxarray writes (cached per EPSG code)."""
    template = xr.Dataset(coords={"y": [0.5], "x": [0.5]}).rio.write_crs(epsg)
    return dict(template["spatial_ref"].attrs)


def _spatial_ref_attrs(grid: Any) -> dict[str, Any]:
    """``spatial_ref`` attrs as rioxarray's ``write_crs`` + ``write_transform`` would write them."""
    attrs = dict(_crs_attrs(grid.epsg))
    attrs["GeoTransform"] = grid.geotransform()
    return attrs


def assemble_dataset(
    data_vars: dict[str, xr.Variable], coords: dict[str, Any], grid: Any
) -> xr.Dataset:
    """Build the Dataset; the direct path skips xarray's merge/alignment (4x faster).

    Every piece is already aligned by construction (one grid), so xarray's merging has nothing
    to do; ``Dataset._construct_direct`` builds the same object without it. It is private API,
    so the public constructor is used whenever it is missing or refuses the arguments (a test
    checks that both give identical Datasets).
    """
    attrs = _spatial_ref_attrs(grid)
    spatial_ref = lazy_variable((), np.array(0), attrs, None)
    if _FAST_CONSTRUCT:
        try:
            return _construct_direct(data_vars, coords, spatial_ref)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - other xarray
            logger.debug("fast Dataset construction unavailable; using xr.Dataset")
    return xr.Dataset(data_vars, coords={**coords, "spatial_ref": spatial_ref})


_FAST_CONSTRUCT = True


def _construct_direct(
    data_vars: dict[str, xr.Variable], coords: dict[str, Any], spatial_ref: xr.Variable
) -> xr.Dataset:
    variables: dict[str, xr.Variable] = {}
    indexes: dict[str, Any] = {}
    dims: dict[str, int] = {}
    for name, values in coords.items():
        indexes[name], variables[name] = _indexed_coord(name, values)
        dims[name] = len(values)
    variables["spatial_ref"] = spatial_ref
    variables.update(data_vars)
    ordered = {d: dims[d] for d in next(iter(data_vars.values())).dims if d in dims}
    ordered.update(dims)
    coord_names: set[Hashable] = set(coords)
    coord_names.add("spatial_ref")
    if not _KNOWN_SLOTS:  # pragma: no cover - another xarray
        return xr.Dataset._construct_direct(variables, coord_names, ordered, {}, indexes)
    # what Dataset._construct_direct sets, without xarray's __setattr__ hook on each slot
    ds = object.__new__(xr.Dataset)
    _set(ds, "_variables", variables)
    _set(ds, "_coord_names", coord_names)
    _set(ds, "_dims", ordered)
    _set(ds, "_indexes", indexes)
    _set(ds, "_attrs", {})
    _set(ds, "_close", None)
    _set(ds, "_encoding", None)
    return ds


_set = object.__setattr__
#: The slots of ``xr.Dataset`` are those :func:`_construct_direct` sets (else xarray's own).
_KNOWN_SLOTS = set(getattr(xr.Dataset, "__slots__", ())) == {
    "__weakref__",
    "_attrs",
    "_cache",
    "_close",
    "_coord_names",
    "_dims",
    "_encoding",
    "_indexes",
    "_variables",
}


#: Build indexed coordinates without pandas'/xarray's re-validation (see :func:`_indexed_coord`);
#: a test checks that both paths give identical Datasets.
FAST_INDEX = True


def _indexed_coord(name: str, values: np.ndarray) -> tuple[Any, xr.Variable]:
    """``(PandasIndex, IndexVariable)`` of a fresh 1-D numeric array, as xarray builds them.

    ``pd.Index(values)`` copies and re-infers the dtype, ``PandasIndex`` casts it again and
    ``create_variables`` wraps it once more and ``IndexVariable`` re-checks it: about half of a
    small Dataset's cost. The values here are a new float64/int64 array nobody else holds, so
    the private constructors (``pd.Index._simple_new``, the slots of the adapter and of the
    variable) give the same objects; the public path is used when they are missing.
    """
    if FAST_INDEX:
        try:
            values.flags.writeable = False  # as pd.Index's own copy
            index = pd.Index._simple_new(values, name)
            adapter = object.__new__(PandasIndexingAdapter)
            adapter.array, adapter._dtype = index, values.dtype
            xindex = xr.indexes.PandasIndex(index, name, coord_dtype=values.dtype, fastpath=True)
            variable = object.__new__(xr.IndexVariable)
            variable._dims, variable._data = (name,), adapter
            variable._attrs = variable._encoding = None
            return xindex, variable
        except (AttributeError, TypeError, AssertionError):  # pragma: no cover - other pandas
            logger.debug("fast index construction unavailable; using pd.Index")
    xindex = xr.indexes.PandasIndex(pd.Index(values, name=name), name, coord_dtype=values.dtype)
    return xindex, xindex.create_variables()[name]


def attr_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)
