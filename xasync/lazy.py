"""The lazy Dataset of one row: a two-layer dask graph and its xarray/rioxarray wrapping.

Graph of one row (stackstac's two-layer model)::

    await-delivery-<tok>            one task: {identifier: url} once the row is delivered
       ├── <identifier>-<tok> (0, 0, 0)   chunk tasks: read_window of the delivered file
       ├── <identifier>-<tok> (0, 0, 1)
       └── ...

The await task first asks the process-local registry (:func:`xasync.delivery.lookup`, filled by
the submitter of this process), else polls S3 with :func:`xasync.delivery.probe_row` with a
growing interval, up to ``wait_timeout`` (then :class:`~xasync.errors.DeliveryTimeout`). An
``error.json`` raises :class:`~xasync.errors.ProcessingError` with the service's message, and
only the chunks of that row fail. Building the Dataset touches no network: coordinates, CRS,
bands and dtypes all come from the :class:`~xasync.plan.ReadPlan`.

Keys are ``dask.base.tokenize`` of the plan, the reader config (a digest, so no option value
appears in a key), the chunks and the wait settings.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401 - registers the .rio accessor
import xarray as xr
from affine import Affine
from dask.array.core import getter
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from xasync import delivery as _delivery
from xasync.errors import DeliveryTimeout, OptionError, ProcessingError, ValidationError
from xasync.plan import OutputPlan, ReadPlan
from xasync.reader import DeclaredOutput, ReaderConfig, filesystem_for
from xasync.windows import open_source

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CHUNK", "DEFAULT_WAIT_TIMEOUT", "build_dataset", "normalize_chunks"]

#: Default chunk side in pixels: a multiple of the common 256/512 px GeoTIFF tile sizes.
DEFAULT_CHUNK = 2048
#: Default cap on waiting for one delivery, in seconds.
DEFAULT_WAIT_TIMEOUT = 24 * 3600.0
#: Default first polling interval (seconds); it grows by 1.5x up to MAX_POLL_INTERVAL.
DEFAULT_POLL_INTERVAL = 2.0
MAX_POLL_INTERVAL = 60.0
#: Consecutive failed S3 probes (network errors) after which the await task gives up.
MAX_PROBE_FAILURES = 5


#: GeoTIFF tile side of delivered files (the service's and the emulator's): "auto" chunks are
#: multiples of it.
TIFF_TILE = 512


def normalize_chunks(
    chunks: Any, shape: tuple[int, int], dtype: Any = "float32"
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Dask chunk sizes ``(y_chunks, x_chunks)`` of a ``shape = (height, width)`` grid.

    ``chunks`` takes the dask idioms: ``None`` (the default, 2048 px a side), an int, ``-1``
    (the whole axis), ``"auto"`` (dask's size limit, in multiples of the 512 px GeoTIFF tile),
    ``(y, x)`` with each side any of these (``None`` there meaning the whole axis, as in dask)
    or explicit block sizes, or ``{"y": .., "x": ..}`` (a missing side gets 2048; ``"band"`` is
    ignored: all bands are one chunk). Resolved by :func:`dask.array.core.normalize_chunks`.

    Raises
    ------
    OptionError
        Anything dask cannot read as chunks of that shape (e.g. ``"lots"``, ``0``, ``2.5``).
    """
    from dask.array.core import normalize_chunks as dask_normalize

    if chunks is None:
        chunks = (DEFAULT_CHUNK, DEFAULT_CHUNK)
    elif isinstance(chunks, Mapping):
        unknown = set(chunks) - {"y", "x", "band"}
        if unknown:
            raise OptionError(f"unknown chunk dims {sorted(unknown)}; use 'y' and 'x'")
        chunks = (chunks.get("y", DEFAULT_CHUNK), chunks.get("x", DEFAULT_CHUNK))
    elif not isinstance(chunks, (tuple, list)):
        chunks = (chunks, chunks)
    if len(chunks) != 2 or any(
        isinstance(c, (bool, float)) or (isinstance(c, (int, np.integer)) and c < -1)
        for c in chunks
    ):
        raise OptionError(f"chunks must be one side or (y, x) in whole pixels, got {chunks!r}")
    try:
        out = dask_normalize(
            tuple(chunks),
            shape=tuple(shape),
            dtype=np.dtype(dtype),
            previous_chunks=(TIFF_TILE, TIFF_TILE),
        )
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise OptionError(
            f"chunks {chunks!r} do not fit a {shape[0]}x{shape[1]} px grid: {exc}"
        ) from None
    if any(c <= 0 for axis in out for c in axis) and all(shape):
        raise OptionError(f"chunks must be positive, got {chunks!r}")
    return out[0], out[1]


def _out_dtype(output: OutputPlan, masked: bool) -> np.dtype:
    dtype = np.dtype(output.dtype)
    if not masked:
        return dtype
    if dtype.kind == "f":
        return dtype
    return np.dtype("float32") if dtype.itemsize <= 2 else np.dtype("float64")


# --------------------------------------------------------------------------- tasks

try:  # s3fs lets botocore's connection errors through untranslated
    from botocore.exceptions import BotoCoreError as _BotoCoreError

    _TRANSIENT: tuple[type[BaseException], ...] = (OSError, _BotoCoreError)
except ImportError:  # pragma: no cover - botocore comes with s3fs
    _TRANSIENT = (OSError,)


def _await_delivery(
    token: str,
    row_url: str,
    identifiers: tuple[str, ...],
    extension: str,
    label: Any,
    reader: ReaderConfig,
    wait_timeout: float,
    poll_interval: float,
) -> dict[str, str]:
    """Task: block until the row is delivered; return ``{identifier: url}``.

    In the process whose submitter follows the row, the outcome comes from the registry without
    any S3 call (waiting on it); anywhere else (a cluster worker, a re-attached session) S3 is
    polled with a growing interval.
    """
    deadline = time.monotonic() + wait_timeout
    interval = poll_interval
    fs = None
    polls = failures = 0
    while True:
        known = _delivery.lookup(row_url)
        if known is not None and not known.is_final:
            # followed by this process's submitter: wait for its word
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeliveryTimeout(
                    f"row {label!r}: not delivered under {row_url} within {wait_timeout:g} s"
                )
            _delivery.wait_for(row_url, min(remaining, 5.0))
            continue
        if known is not None:
            state = known
        else:
            if fs is None:
                fs = filesystem_for(row_url, reader)
            try:
                state = _delivery.probe_row(
                    fs, row_url, identifiers, read_cost=False, extension=extension
                )
                failures = 0
            except (PermissionError, FileNotFoundError):
                raise
            except _TRANSIENT as exc:  # a transient S3 hiccup must not fail the row at once
                failures += 1
                if failures >= MAX_PROBE_FAILURES:
                    raise
                logger.warning("probing %s failed (%s); retrying", row_url, type(exc).__name__)
                state = _delivery.RowDelivery("pending")
            polls += 1
        if state.state == "done":
            missing = [i for i in identifiers if i not in state.outputs]
            if not missing:
                logger.debug("row %s delivered (%s) after %d polls", token, state.request_id, polls)
                return dict(state.outputs)
            _delivery.forget(row_url)  # registry entry without our outputs: ask S3
            continue
        elif state.state == "failed":
            raise ProcessingError(
                state.error or "the request failed without a message",
                request_id=state.request_id,
                row=label,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeliveryTimeout(
                f"row {label!r}: nothing delivered under {row_url} within {wait_timeout:g} s "
                f"({polls} polls, last state {state.state!r})",
            )
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, MAX_POLL_INTERVAL)


# --------------------------------------------------------------------------- build


def _graph_token(plan: ReadPlan, reader: ReaderConfig, *parts: Any) -> str:
    """Deterministic graph-key token of a row: ``dask.base.tokenize`` of all that shapes its tasks.

    The reader config tokenizes as a digest, so no option value reaches a key.
    """
    return tokenize(
        plan.token,
        plan.row_url,
        plan.grid,
        plan.outputs,
        plan.label,
        plan.time_range,
        plan.mask_wkb,
        reader,
        parts,
    )


def _band_dims(outputs: tuple[OutputPlan, ...]) -> dict[str, str]:
    """Band dim name per multi-band output: ``band`` unless band counts differ."""
    multi = [o for o in outputs if o.bands > 1]
    if len({o.bands for o in multi}) <= 1:
        return {o.identifier: "band" for o in multi}
    return {o.identifier: f"{o.identifier}_band" for o in multi}


def _validate(plan: ReadPlan, wait_timeout: float, poll_interval: float) -> None:
    if not isinstance(plan, ReadPlan):
        raise ValidationError(f"build_dataset needs a ReadPlan, got {type(plan).__name__}")
    if plan.grid.width <= 0 or plan.grid.height <= 0:
        raise ValidationError(f"empty grid {plan.grid.width}x{plan.grid.height}")
    if not plan.outputs:
        raise ValidationError("the plan has no raster outputs")
    ids = [o.identifier for o in plan.outputs]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"duplicate output identifiers {ids}")
    if len({o.extension for o in plan.outputs}) != 1:
        raise ValidationError("outputs with different file extensions are not supported")
    for o in plan.outputs:
        if o.bands < 1:
            raise ValidationError(f"output {o.identifier!r} has {o.bands} bands")
        np.dtype(o.dtype)
    if not wait_timeout > 0 or not poll_interval > 0:
        raise ValidationError("wait_timeout and poll_interval must be positive")


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
    _validate(plan, timeout, float(poll_interval))
    grid = plan.grid
    masked = plan.mask_wkb is not None
    widest = max((_out_dtype(o, masked) for o in plan.outputs), key=lambda d: d.itemsize)
    ychunks, xchunks = normalize_chunks(chunks, grid.shape, widest)
    identifiers = tuple(o.identifier for o in plan.outputs)
    extension = plan.outputs[0].extension
    tok = _graph_token(plan, reader, (ychunks, xchunks), timeout, float(poll_interval))
    await_key = f"await-delivery-{tok}"
    await_layer = {
        await_key: (
            _await_delivery,
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
    transform = tuple(grid.transform)[:6] if masked else None
    yoffs = np.cumsum((0, *ychunks[:-1]))
    xoffs = np.cumsum((0, *xchunks[:-1]))
    band_dims = _band_dims(plan.outputs)

    coords: dict[str, Any] = {"y": grid.y_coords(), "x": grid.x_coords()}
    data_vars = {}
    for output in plan.outputs:
        dtype = _out_dtype(output, masked)
        squeeze = output.bands == 1
        name = f"{output.identifier}-{tok}"
        source_key = f"{output.identifier}-source-{tok}"
        source_layer = {
            source_key: (
                open_source,
                await_key,
                output.identifier,
                reader,
                dtype.str,
                grid.shape,
                output.bands,
                squeeze,
                plan.mask_wkb,
                transform,
                output.nodata,
                DeclaredOutput(output.identifier, output.bands, np.dtype(output.dtype).name),
            )
        }
        layer: dict[Any, Any] = {}
        for iy, (yo, h) in enumerate(zip(yoffs, ychunks, strict=True)):
            for ix, (xo, w) in enumerate(zip(xoffs, xchunks, strict=True)):
                window = (slice(int(yo), int(yo + h)), slice(int(xo), int(xo + w)))
                if squeeze:
                    layer[(name, iy, ix)] = (getter, source_key, window)
                else:
                    layer[(name, 0, iy, ix)] = (
                        getter,
                        source_key,
                        (slice(0, output.bands), *window),
                    )
        hlg = HighLevelGraph(
            {await_key: await_layer, source_key: source_layer, name: layer},
            {await_key: set(), source_key: {await_key}, name: {source_key}},
        )
        if squeeze:
            arr_chunks: tuple = (ychunks, xchunks)
            dims: tuple[str, ...] = ("y", "x")
        else:
            arr_chunks = ((output.bands,), ychunks, xchunks)
            dims = (band_dims[output.identifier], "y", "x")
            coords[dims[0]] = np.arange(1, output.bands + 1)
        arr = da.Array(hlg, name, arr_chunks, meta=np.empty((0,) * len(arr_chunks), dtype))
        var_attrs = {}
        if masked:
            var_attrs["_FillValue"] = np.nan  # rioxarray's write_nodata(nan, encoded=False)
        elif output.nodata is not None:
            var_attrs["_FillValue"] = dtype.type(output.nodata)
        data_vars[output.identifier] = xr.Variable(
            dims, arr, attrs=var_attrs, encoding={"grid_mapping": "spatial_ref"}
        )

    ds = _assemble(data_vars, coords, grid)
    base = {"token": plan.token, "row_url": plan.row_url}
    if plan.label is not None:
        base["label"] = _attr_value(plan.label)
    if plan.time_range:
        base["time_from"], base["time_to"] = (str(t) for t in plan.time_range)
    ds.attrs.update(base)
    if attrs:
        ds.attrs.update(attrs)
    return ds


@functools.lru_cache(maxsize=256)
def _crs_attrs(epsg: int) -> dict[str, Any]:
    """The CRS part of the ``spatial_ref`` attrs rioxarray writes (cached per EPSG code)."""
    template = xr.Dataset(coords={"y": [0.5], "x": [0.5]}).rio.write_crs(epsg)
    return dict(template["spatial_ref"].attrs)


def _spatial_ref_attrs(epsg: int, transform: Affine) -> dict[str, Any]:
    """``spatial_ref`` attrs as rioxarray's ``write_crs`` + ``write_transform`` would write them."""
    attrs = dict(_crs_attrs(epsg))
    attrs["GeoTransform"] = " ".join(str(item) for item in transform.to_gdal())
    return attrs


def _assemble(data_vars: dict[str, xr.Variable], coords: dict[str, Any], grid: Any) -> xr.Dataset:
    """Build the Dataset; the direct path skips xarray's merge/alignment (4x faster).

    Every piece is already aligned by construction (one grid), so xarray's merging has nothing
    to do; ``Dataset._construct_direct`` builds the same object without it. It is private API,
    so the public constructor is used whenever it is missing or refuses the arguments (a test
    checks that both give identical Datasets).
    """
    spatial_ref = xr.Variable((), 0, attrs=_spatial_ref_attrs(grid.epsg, grid.transform))
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
    import pandas as pd

    variables: dict[str, xr.Variable] = {}
    indexes: dict[str, Any] = {}
    dims: dict[str, int] = {}
    for name, values in coords.items():
        index = xr.indexes.PandasIndex(pd.Index(values, name=name), name)
        variables.update(index.create_variables())
        indexes[name] = index
        dims[name] = len(values)
    variables["spatial_ref"] = spatial_ref
    variables.update(data_vars)
    ordered = {d: dims[d] for d in next(iter(data_vars.values())).dims if d in dims}
    ordered.update(dims)
    return xr.Dataset._construct_direct(
        variables, set(coords) | {"spatial_ref"}, ordered, {}, indexes
    )


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)
