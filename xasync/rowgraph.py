"""The dask side of one row: chunk sizes and the graph layers of each output.

Each output of a row is one graph layer named like its array: the row's await task,
``open_source`` (one task on the await task) and one ``getter`` task per chunk, so a later slice fuses into the chunk's read and only the tiles it touches are
fetched (see :mod:`xasync.windows`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask.array.core import getter
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from xasync.errors import OptionError
from xasync.plan import OutputPlan, ReadPlan
from xasync.reader import DeclaredOutput, ReaderConfig
from xasync.windows import open_source

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK",
    "TIFF_TILE",
    "RowLayers",
    "band_dims",
    "chunk_windows",
    "dask_array",
    "layered_graph",
    "lazy_variable",
    "normalize_chunks",
    "out_dtype",
]

#: Default chunk side in pixels: a multiple of the common 256/512 px GeoTIFF tile sizes.
DEFAULT_CHUNK = 2048
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
    if chunks is None or type(chunks) in (int, str):  # one side for both: the common case
        return _normalize_simple(chunks, (int(shape[0]), int(shape[1])), np.dtype(dtype).str)
    return _normalize(chunks, shape, dtype)


@functools.lru_cache(maxsize=1024)
def _normalize_simple(chunks: int | str | None, shape: tuple[int, int], dtype: str) -> tuple:
    """:func:`_normalize` of ``None``, an ``int`` or a ``str`` (exact types: the cache key)."""
    return _normalize(chunks, shape, dtype)


def _normalize(
    chunks: Any, shape: tuple[int, int], dtype: Any
) -> tuple[tuple[int, ...], tuple[int, ...]]:
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
        try:
            hash(tuple(chunks))
        except TypeError:  # e.g. explicit block sizes given as lists
            out = dask_normalize(
                tuple(chunks),
                shape=tuple(shape),
                dtype=np.dtype(dtype),
                previous_chunks=(TIFF_TILE, TIFF_TILE),
            )
        else:
            out = _cached_normalize(tuple(chunks), tuple(shape), np.dtype(dtype).str)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise OptionError(
            f"chunks {chunks!r} do not fit a {shape[0]}x{shape[1]} px grid: {exc}"
        ) from None
    if any(c <= 0 for axis in out for c in axis) and all(shape):
        raise OptionError(f"chunks must be positive, got {chunks!r}")
    return out[0], out[1]


@functools.lru_cache(maxsize=1024)
def _cached_normalize(chunks: tuple, shape: tuple[int, int], dtype: str) -> tuple:
    """dask's normalize_chunks, cached: the rows of one call share a few shapes."""
    from dask.array.core import normalize_chunks as dask_normalize

    return dask_normalize(
        chunks, shape=shape, dtype=np.dtype(dtype), previous_chunks=(TIFF_TILE, TIFF_TILE)
    )


@functools.lru_cache(maxsize=256)
def chunk_windows(
    ychunks: tuple[int, ...], xchunks: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], tuple[slice, slice]], ...]:
    """``((iy, ix), (y slice, x slice))`` of every chunk (cached: rows share a few shapes)."""
    yoffs = np.cumsum((0, *ychunks[:-1])).tolist()
    xoffs = np.cumsum((0, *xchunks[:-1])).tolist()
    return tuple(
        ((iy, ix), (slice(yo, yo + h), slice(xo, xo + w)))
        for iy, (yo, h) in enumerate(zip(yoffs, ychunks, strict=True))
        for ix, (xo, w) in enumerate(zip(xoffs, xchunks, strict=True))
    )


@functools.lru_cache(maxsize=64)
def _meta(dtype: str, ndim: int) -> np.ndarray:
    return np.empty((0,) * ndim, np.dtype(dtype))


def _configured(key: str) -> bool:
    """Whether the top-level dask setting ``key`` is set (truthy), under either spelling.

    The lookup ``dask.config.get`` does for a top-level key (it accepts ``-`` for ``_``), on
    the public ``dask.config.config`` dict, without its per-call parsing (twice per row).
    """
    config = dask.config.config
    return bool(config.get(key) or config.get(key.replace("_", "-")))


#: Build dask arrays without ``da.Array``'s checks (see :func:`dask_array`); a test checks that
#: both paths give the same array.
FAST_ARRAY = True


def dask_array(graph: HighLevelGraph, name: str, chunks: tuple, dtype: np.dtype) -> da.Array:
    """The dask array ``name`` of ``graph``, whose ``chunks`` are already normalised.

    ``da.Array(...)`` re-normalises the chunks, re-derives the meta and annotates the layer for
    dashboards, which costs more than the rest of a row's Dataset. The fields it sets are set
    directly here (private to dask), unless array plugins are configured or the fields are not
    there: then the public constructor is used.
    """
    meta = _meta(np.dtype(dtype).str, len(chunks))
    if FAST_ARRAY and not _configured("array_plugins"):
        try:
            arr = object.__new__(da.Array)
            arr.dask, arr._name, arr._chunks, arr._meta = graph, name, chunks, meta
            return arr
        except (AttributeError, TypeError):  # pragma: no cover - another dask
            logger.debug("fast dask array construction unavailable; using da.Array")
    return da.Array(graph, name, chunks, meta=meta)


#: Build graphs without ``HighLevelGraph``'s per-layer checks (see :func:`layered_graph`); a
#: test checks that both paths give the same graph.
FAST_GRAPH = True


def layered_graph(layers: dict[str, dict], dependencies: dict[str, set[str]]) -> HighLevelGraph:
    """``HighLevelGraph(layers, dependencies)`` of plain dict layers.

    The public constructor wraps each dict in a ``MaterializedLayer`` whose ``Layer.__init__``
    reads the annotation context and the ``collection_annotations`` setting each time: three
    layers a row cost more than the rest of its graph. With neither set (checked here, once),
    the same objects are built directly (private to dask); otherwise, or when the fields are
    not there, the public constructor is used.
    """
    if FAST_GRAPH and not dask.get_annotations() and not _configured("collection_annotations"):
        try:
            graph = object.__new__(HighLevelGraph)
            graph.dependencies, graph.key_dependencies = dependencies, {}
            graph.layers = {name: _materialized(layer) for name, layer in layers.items()}
            return graph
        except (AttributeError, TypeError):  # pragma: no cover - another dask
            logger.debug("fast graph construction unavailable; using HighLevelGraph")
    return HighLevelGraph(layers, dependencies)


def _materialized(mapping: dict) -> MaterializedLayer:
    layer = object.__new__(MaterializedLayer)
    layer.annotations = layer.collection_annotations = None
    layer.mapping = mapping
    return layer


@functools.lru_cache(maxsize=256)
def declared_output(identifier: str, bands: int, dtype: str) -> DeclaredOutput:
    """What a delivered output must be (cached: the rows of a call share their outputs)."""
    return DeclaredOutput(identifier, bands, np.dtype(dtype).name)


def out_dtype(output: OutputPlan, masked: bool) -> np.dtype:
    dtype = np.dtype(output.dtype)
    if not masked:
        return dtype
    if dtype.kind == "f":
        return dtype
    return np.dtype("float32") if dtype.itemsize <= 2 else np.dtype("float64")


def band_dims(outputs: tuple[OutputPlan, ...]) -> dict[str, str]:
    """Band dim name per multi-band output: ``band`` unless band counts differ."""
    multi = [o for o in outputs if o.bands > 1]
    if len({o.bands for o in multi}) <= 1:
        return {o.identifier: "band" for o in multi}
    return {o.identifier: f"{o.identifier}_band" for o in multi}


class RowLayers:
    """Builds the dask array of each output of one row on the shared await layer."""

    def __init__(
        self,
        plan: ReadPlan,
        reader: ReaderConfig,
        await_key: str,
        await_layer: dict,
        ychunks: tuple[int, ...],
        xchunks: tuple[int, ...],
    ) -> None:
        self.plan, self.reader, self.await_key, self.await_layer = (
            plan,
            reader,
            await_key,
            await_layer,
        )
        self.ychunks, self.xchunks = ychunks, xchunks
        self.masked = plan.mask_wkb is not None
        self.transform = tuple(plan.grid.transform)[:6] if self.masked else None

    def _source_task(self, output: OutputPlan, dtype: np.dtype) -> tuple:
        declared = declared_output(output.identifier, output.bands, output.dtype)
        return (
            open_source,
            self.await_key,
            output.identifier,
            self.reader,
            dtype.str,
            self.plan.grid.shape,
            output.bands,
            output.bands == 1,
            self.plan.mask_wkb,
            self.transform,
            output.nodata,
            declared,
        )

    def _chunk_layer(self, name: str, source_key: str, bands: int) -> dict[Any, Any]:
        pre = (name,) if bands == 1 else (name, 0)
        band = () if bands == 1 else (slice(0, bands),)
        return {
            pre + ij: (getter, source_key, band + window)
            for ij, window in chunk_windows(self.ychunks, self.xchunks)
        }

    def variable(self, output: OutputPlan, tok: str, band_dim: str | None) -> xr.Variable:
        """The lazy variable of one output: ``(y, x)``, or ``(band_dim, y, x)`` if multi-band."""
        dtype = out_dtype(output, self.masked)
        name = f"{output.identifier}-{tok}"
        source_key = f"{output.identifier}-source-{tok}"
        # One layer holds the await, source and chunk tasks: every row's graph is a few
        # containers fewer for the garbage collector (dask's optimisations work on the tasks).
        layer = self._chunk_layer(name, source_key, output.bands)
        layer.update(self.await_layer)
        layer[source_key] = self._source_task(output, dtype)
        hlg = layered_graph({name: layer}, {name: set()})
        if output.bands == 1:
            arr_chunks: tuple = (self.ychunks, self.xchunks)
            dims: tuple[str, ...] = ("y", "x")
        else:
            arr_chunks = ((output.bands,), self.ychunks, self.xchunks)
            dims = (str(band_dim), "y", "x")
        arr = dask_array(hlg, name, arr_chunks, dtype)
        var_attrs = {}
        if self.masked:
            var_attrs["_FillValue"] = np.nan  # rioxarray's write_nodata(nan, encoded=False)
        elif output.nodata is not None:
            var_attrs["_FillValue"] = dtype.type(output.nodata)
        encoding = {"grid_mapping": "spatial_ref"}
        return lazy_variable(dims, arr, var_attrs, encoding)


#: Wrap dask arrays in ``xr.Variable`` without its re-checks (see :func:`lazy_variable`); a
#: test checks that both paths give identical variables.
FAST_VARIABLE = True


def lazy_variable(
    dims: tuple[str, ...],
    arr: da.Array | np.ndarray,
    attrs: dict[str, Any],
    encoding: dict[str, Any] | None,
) -> xr.Variable:
    """``xr.Variable(dims, arr, attrs=attrs, encoding=encoding)`` of a dask array of ``dims``
    (or of a numeric numpy array, which xarray keeps as it is).

    The constructor re-parses the dims, asks the array for its ``ndim`` (a sum over its chunks)
    and copies both dicts; here the dicts are fresh and the dims a checked tuple, so its four
    slots are set directly (private to xarray), or the public constructor is used when they are
    not there.
    """
    if isinstance(arr, da.Array):
        fits = len(dims) == len(arr.chunks)
    else:
        fits = type(arr) is np.ndarray and arr.dtype.kind in "iuf" and arr.ndim == len(dims)
    if FAST_VARIABLE and fits:
        try:
            var = object.__new__(xr.Variable)
            var._dims, var._data = dims, arr  # type: ignore[assignment]
            var._attrs, var._encoding = attrs or None, encoding
            return var
        except (AttributeError, TypeError):  # pragma: no cover - another xarray
            logger.debug("fast variable construction unavailable; using xr.Variable")
    fast = isinstance(arr, da.Array)
    return xr.Variable(dims, arr, attrs=attrs, encoding=encoding, fastpath=fast)
