"""The lazy Dataset of a row delivered by several requests (tiles) or by a share of one (packs).

Graph of one row with sources (see :mod:`xasync.planned`)::

    await-<tok>-<k>                  one task per request the row needs
       └── <identifier>-part-<tok>-<k>   the request's window, as an array-like (no I/O)
             ├── <identifier>-<tok> (iy, ix)   chunk tasks: a window of one part
             └── ...

All these tasks are one graph layer named like the output's array (fewer objects per row).
Chunks are cut at the parts' seams first, then every ``chunks`` pixels, so a chunk reads from
exactly one request and computing a chunk awaits only that request. A packed row's part is its
window of the pack's delivery, masked with the row's own geometry when ``mask=True``.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from dask.array.core import getter

from xasync.awaiting import await_delivery
from xasync.errors import OptionError, ValidationError
from xasync.lazy import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    assemble_dataset,
    attr_value,
    graph_token,
    outputs_info,
    validate_plan,
)
from xasync.plan import ReadPlan
from xasync.planned import Source
from xasync.reader import DeclaredOutput, ReaderConfig
from xasync.rowgraph import (
    dask_array,
    declared_output,
    layered_graph,
    lazy_variable,
    normalize_chunks,
    out_dtype,
)
from xasync.windows import WindowSource, read_masked

logger = logging.getLogger(__name__)

__all__ = ["build_mosaic"]


class _PartSource(WindowSource):
    """A window ``(row_off, col_off, height, width)`` of one delivered file, as an array."""

    def __init__(
        self,
        url: str,
        reader: ReaderConfig,
        dtype: str,
        file_shape: tuple[int, int],
        window: tuple[int, int, int, int],
        bands: int,
        squeeze: bool,
        mask_wkb: bytes | None,
        transform: tuple[float, ...] | None,
        nodata: float | None,
        declared: DeclaredOutput | None = None,
    ) -> None:
        view = (window[2], window[3])
        super().__init__(
            url, reader, dtype, view, bands, squeeze, mask_wkb, transform, nodata, declared
        )
        self.file_shape, self.origin = file_shape, (window[0], window[1])

    def _read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        (y0, y1), (x0, x1) = rows, cols
        if y1 <= y0 or x1 <= x0:
            return np.empty((self.bands, max(0, y1 - y0), max(0, x1 - x0)), self.dtype)
        oy, ox = self.origin
        window = (y0 + oy, x0 + ox, y1 - y0, x1 - x0)
        return read_masked(
            self.url,
            self.reader,
            window,
            self.dtype,
            self.file_shape,
            self.mask_wkb,
            self.transform,
            self.nodata,
            self.declared,
        )


def _open_part(
    outputs: Mapping[str, str], identifier: str, *args: Any
) -> _PartSource:  # pragma: no cover - trivial task, run by dask
    """Task: the part of a delivered output as an array-like (opens nothing until indexed)."""
    return _PartSource(outputs[identifier], *args)


def _edges(parts: Sequence[Any], axis: int, size: int) -> list[int]:
    """Seams of the parts (sources, or their targets) along one axis (0: rows, 1: columns),
    from 0 to ``size``."""
    cuts = {0, size}
    for s in parts:
        target = s if isinstance(s, tuple) else s.target
        cuts.add(target[axis])
        cuts.add(target[axis] + target[axis + 2])
    return sorted(cuts)


def _cut(chunks: tuple[int, ...], seams: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(offsets, sizes)`` of the chunks along one axis: the given chunks, also cut at seams."""
    cuts = set(seams)
    off = 0
    for n in chunks:
        cuts.add(off)
        off += n
    cuts.add(off)
    edges = sorted(cuts)
    return tuple(edges[:-1]), tuple(b - a for a, b in zip(edges[:-1], edges[1:], strict=True))


def _cuts(chunks: Any, plan: ReadPlan, sources: list[Source], dtype: np.dtype) -> tuple:
    """Chunks of both axes restarted at every seam (so they line up with each request's own
    GeoTIFF tiles), or, for explicit block sizes, the asked-for chunks also cut at the seams.

    ``((y offsets, y sizes), (x offsets, x sizes))``, tuples; cached for the common chunk
    specs (None, an int, a str: the rows of a call share a few shapes and seams).
    """
    height, width = plan.grid.shape
    if chunks is None or type(chunks) in (int, str):
        targets = tuple(s.target for s in sources)
        return _cuts_cached(chunks, height, width, targets, dtype.str)
    yseams, xseams = _edges(sources, 0, height), _edges(sources, 1, width)
    return _cuts_of(chunks, height, width, yseams, xseams, dtype)


@functools.lru_cache(maxsize=1024)
def _cuts_cached(
    chunks: int | str | None, height: int, width: int, targets: tuple, dtype: str
) -> tuple:
    yseams, xseams = _edges(targets, 0, height), _edges(targets, 1, width)
    return _cuts_of(chunks, height, width, yseams, xseams, np.dtype(dtype))


def _cuts_of(
    chunks: Any, height: int, width: int, yseams: list[int], xseams: list[int], dtype: np.dtype
) -> tuple:
    try:
        per_axis = []
        for axis, seams in ((0, yseams), (1, xseams)):
            sizes: list[int] = []
            for lo, hi in zip(seams[:-1], seams[1:], strict=True):
                shape = (hi - lo, width) if axis == 0 else (height, hi - lo)
                sizes.extend(normalize_chunks(chunks, shape, dtype)[axis])
            offsets = tuple(itertools.accumulate(sizes[:-1], initial=0))
            per_axis.append((offsets, tuple(sizes)))
        return tuple(per_axis)
    except OptionError:  # explicit block sizes for the whole row
        ychunks, xchunks = normalize_chunks(chunks, (height, width), dtype)
        return _cut(ychunks, yseams), _cut(xchunks, xseams)


def _part_at(parts: Sequence[Source], y: int, x: int) -> int:
    for k, s in enumerate(parts):
        r, c, h, w = s.target
        if r <= y < r + h and c <= x < c + w:
            return k
    raise ValidationError(f"no source covers pixel ({y}, {x}) of the row")


def _check_sources(plan: ReadPlan, sources: Sequence[Source]) -> None:
    covered = 0
    for s in sources:
        r, c, h, w = s.target
        sr, sc, sh, sw = s.window
        if (sh, sw) != (h, w) or min(r, c, sr, sc) < 0 or min(h, w) < 1:
            raise ValidationError(f"source {s.name}: window {s.window} does not fit {s.target}")
        if sr + sh > s.grid.height or sc + sw > s.grid.width:
            raise ValidationError(f"source {s.name}: window {s.window} outside its request")
        if r + h > plan.grid.height or c + w > plan.grid.width:
            raise ValidationError(f"source {s.name}: target {s.target} outside the row")
        covered += h * w
    if covered != plan.grid.height * plan.grid.width:
        raise ValidationError("the sources do not cover the row's grid exactly once")


def _await_layer(
    plan: ReadPlan,
    sources: list[Source],
    tok: str,
    reader: ReaderConfig,
    timeout: float,
    poll: float,
) -> tuple[dict, list[str]]:
    """One await task per distinct request; the key of each source's await."""
    identifiers = tuple(o.identifier for o in plan.outputs)
    number: dict[str, int] = {}  # request URL -> its await's number
    layer: dict[Any, Any] = {}
    keys = []
    for s in sources:
        key = f"await-{tok}-{number.setdefault(s.row_url, len(number))}"
        label = plan.label if s.name == "request" else f"{plan.label} ({s.name})"
        layer[key] = (
            await_delivery,
            s.token,
            s.row_url,
            identifiers,
            plan.outputs[0].extension,
            label,
            reader,
            timeout,
            poll,
        )
        keys.append(key)
    return layer, keys


def _variable(
    plan: ReadPlan,
    output: Any,
    sources: list[Source],
    awaits: tuple[str, dict, list[str]],
    reader: ReaderConfig,
    cuts: tuple,
    tok: str,
    band_dim: str | None,
) -> xr.Variable:
    """The lazy variable of one output of a row read from its sources."""
    masked = plan.mask_wkb is not None
    dtype = out_dtype(output, masked)
    squeeze = output.bands == 1
    _, await_layer, await_keys = awaits
    name, src_name = f"{output.identifier}-{tok}", f"{output.identifier}-part-{tok}"
    declared = declared_output(output.identifier, output.bands, output.dtype)
    src_layer: dict[Any, Any] = {
        f"{src_name}-{k}": (
            _open_part,
            await_keys[k],
            output.identifier,
            reader,
            dtype.str,
            s.grid.shape,
            s.window,
            output.bands,
            squeeze,
            plan.mask_wkb,
            tuple(s.grid.transform)[:6] if masked else None,
            output.nodata,
            declared,
        )
        for k, s in enumerate(sources)
    }
    (yoffs, ychunks), (xoffs, xchunks) = cuts
    layer: dict[Any, Any] = {}
    for iy, (yo, h) in enumerate(zip(yoffs, ychunks, strict=True)):
        for ix, (xo, w) in enumerate(zip(xoffs, xchunks, strict=True)):
            k = _part_at(sources, yo, xo)
            r, c = sources[k].target[:2]
            window = (slice(yo - r, yo - r + h), slice(xo - c, xo - c + w))
            key = (name, iy, ix) if squeeze else (name, 0, iy, ix)
            layer[key] = (
                getter,
                f"{src_name}-{k}",
                window if squeeze else (slice(0, output.bands), *window),
            )
    layer.update(await_layer)  # one layer (see xasync.rowgraph): fewer containers per row
    layer.update(src_layer)
    hlg = layered_graph({name: layer}, {name: set()})
    if squeeze:
        arr_chunks: tuple = (tuple(ychunks), tuple(xchunks))
        dims: tuple[str, ...] = ("y", "x")
    else:
        arr_chunks = ((output.bands,), tuple(ychunks), tuple(xchunks))
        dims = (str(band_dim), "y", "x")
    arr = dask_array(hlg, name, arr_chunks, dtype)
    var_attrs = {}
    if masked:
        var_attrs["_FillValue"] = np.nan
    elif output.nodata is not None:
        var_attrs["_FillValue"] = dtype.type(output.nodata)
    encoding = {"grid_mapping": "spatial_ref"}
    return lazy_variable(dims, arr, var_attrs, encoding)


def build_mosaic(
    plan: ReadPlan,
    sources: Sequence[Source],
    *,
    reader: ReaderConfig,
    chunks: Any = None,
    wait_timeout: float | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The lazy Dataset of a row on its own grid, read from the windows of ``sources``.

    The same Dataset as :func:`xasync.lazy.build_dataset` (variables, dims, coords,
    ``spatial_ref``, masking, attrs), whatever requests deliver the row: ``plan`` gives the
    row's grid, outputs, label and mask geometry (its ``row_url`` is not read). The chunks
    asked for restart at each seam between sources, so a chunk reads one request.
    ``ds.encoding["xasync"]["row_url"]`` lists the requests' folders, space-separated.
    """
    timeout = DEFAULT_WAIT_TIMEOUT if wait_timeout is None else float(wait_timeout)
    validate_plan(plan, timeout, float(poll_interval))
    sources = list(sources)
    _check_sources(plan, sources)
    grid = plan.grid
    widest, _, dims_of = outputs_info(plan.outputs, plan.mask_wkb is not None)
    cuts = _cuts(chunks, plan, sources, widest)
    ychunks, xchunks = tuple(cuts[0][1]), tuple(cuts[1][1])
    srcs = tuple((s.token, s.row_url, s.window, s.target) for s in sources)
    tok = graph_token(plan, reader, (ychunks, xchunks), timeout, float(poll_interval), srcs)
    await_layer, await_keys = _await_layer(
        plan, sources, tok, reader, timeout, float(poll_interval)
    )
    awaits = (f"await-{tok}", await_layer, await_keys)
    coords: dict[str, Any] = {"y": grid.y_coords(), "x": grid.x_coords()}
    data_vars = {}
    for output in plan.outputs:
        dim = dims_of.get(output.identifier)
        if dim is not None:
            coords[dim] = np.arange(1, output.bands + 1)
        data_vars[output.identifier] = _variable(
            plan, output, sources, awaits, reader, cuts, tok, dim
        )
    ds = assemble_dataset(data_vars, coords, grid)
    if plan.time_range:
        ds.attrs["time_from"], ds.attrs["time_to"] = (str(t) for t in plan.time_range)
    if attrs:
        ds.attrs.update(attrs)
    urls = " ".join(dict.fromkeys(s.row_url for s in sources))
    row = {"token": plan.token, "row_url": urls}
    if plan.label is not None:
        row["label"] = attr_value(plan.label)
    ds.encoding["xasync"] = row
    return ds
