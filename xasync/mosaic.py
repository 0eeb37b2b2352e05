"""The lazy Dataset of a row delivered by several requests (tiles) or by a share of one (packs).

Graph of one row with sources (see :mod:`xasync.planned`)::

    await-<tok>-<k>                  one task per request the row needs
       └── <identifier>-part-<tok>-<k>   the request's window, as an array-like (no I/O)
             ├── <identifier>-<tok> (iy, ix)   chunk tasks: a window of one part
             └── ...

Chunks are cut at the parts' seams first, then every ``chunks`` pixels, so a chunk reads from
exactly one request and computing a chunk awaits only that request. A packed row's part is its
window of the pack's delivery, masked with the row's own geometry when ``mask=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.array.core import getter
from dask.highlevelgraph import HighLevelGraph

from xasync.errors import ValidationError
from xasync.lazy import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    _assemble,
    _attr_value,
    _band_dims,
    _graph_token,
    _out_dtype,
    _read_masked,
    _split,
    _validate,
    _WindowSource,
    normalize_chunks,
)
from xasync.plan import ReadPlan
from xasync.planned import Source
from xasync.reader import ReaderConfig

try:  # wave-1 layout: the await task has its own module
    from xasync.awaiting import await_delivery
except ImportError:  # pragma: no cover - before the merge
    from xasync.lazy import _await_delivery as await_delivery

logger = logging.getLogger(__name__)

__all__ = ["build_mosaic"]


class _PartSource(_WindowSource):
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
    ) -> None:
        super().__init__(
            url, reader, dtype, tuple(window[2:]), bands, squeeze, mask_wkb, transform, nodata
        )
        self.file_shape, self.origin = file_shape, (window[0], window[1])

    def _read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        (y0, y1), (x0, x1) = rows, cols
        if y1 <= y0 or x1 <= x0:
            return np.empty((self.bands, max(0, y1 - y0), max(0, x1 - x0)), self.dtype)
        oy, ox = self.origin
        window = (y0 + oy, x0 + ox, y1 - y0, x1 - x0)
        return _read_masked(
            self.url,
            self.reader,
            window,
            self.dtype,
            self.file_shape,
            self.mask_wkb,
            self.transform,
            self.nodata,
        )


def _open_part(
    outputs: Mapping[str, str], identifier: str, *args: Any
) -> _PartSource:  # pragma: no cover - trivial task, run by dask
    """Task: the part of a delivered output as an array-like (opens nothing until indexed)."""
    return _PartSource(outputs[identifier], *args)


def _edges(parts: Sequence[Source], axis: int, size: int) -> list[int]:
    """Seams of the parts along one axis (0: rows, 1: columns), from 0 to ``size``."""
    cuts = {0, size}
    for s in parts:
        cuts.add(s.target[axis])
        cuts.add(s.target[axis] + s.target[axis + 2])
    return sorted(cuts)


def _axis_chunks(edges: list[int], step: int) -> tuple[list[int], list[int]]:
    """``(offsets, sizes)`` of the chunks along one axis: cut at the seams, then every step."""
    offsets, sizes = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        off = lo
        for n in _split(hi - lo, step):
            offsets.append(off)
            sizes.append(n)
            off += n
    return offsets, sizes


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

    Same result as :func:`xasync.lazy.build_dataset` (variables, dims, coords, ``spatial_ref``,
    masking), whatever requests deliver the row. ``plan`` gives the row's grid, outputs, label
    and mask geometry; its ``row_url`` is not read.
    """
    timeout = DEFAULT_WAIT_TIMEOUT if wait_timeout is None else float(wait_timeout)
    _validate(plan, timeout, float(poll_interval))
    sources = list(sources)
    _check_sources(plan, sources)
    cy, cx = normalize_chunks(chunks)
    grid, masked = plan.grid, plan.mask_wkb is not None
    identifiers = tuple(o.identifier for o in plan.outputs)
    extension = plan.outputs[0].extension
    tok = _graph_token(plan, reader, (cy, cx), timeout, float(poll_interval), tuple(sources))
    urls = list(dict.fromkeys(s.row_url for s in sources))
    awaits: dict[Any, Any] = {}
    for s in sources:
        key = f"await-{tok}-{urls.index(s.row_url)}"
        label = plan.label if s.name == "request" else f"{plan.label} ({s.name})"
        awaits[key] = (
            await_delivery,
            s.token,
            s.row_url,
            identifiers,
            extension,
            label,
            reader,
            timeout,
            float(poll_interval),
        )
    yoffs, ychunks = _axis_chunks(_edges(sources, 0, grid.height), cy)
    xoffs, xchunks = _axis_chunks(_edges(sources, 1, grid.width), cx)
    band_dims = _band_dims(plan.outputs)
    coords: dict[str, Any] = {"y": grid.y_coords(), "x": grid.x_coords()}
    data_vars = {}
    for output in plan.outputs:
        dtype = _out_dtype(output, masked)
        squeeze = output.bands == 1
        name, src_name = f"{output.identifier}-{tok}", f"{output.identifier}-part-{tok}"
        src_layer = {}
        for k, s in enumerate(sources):
            transform = tuple(s.grid.transform)[:6] if masked else None
            src_layer[f"{src_name}-{k}"] = (
                _open_part,
                f"await-{tok}-{urls.index(s.row_url)}",
                output.identifier,
                reader,
                dtype.str,
                s.grid.shape,
                s.window,
                output.bands,
                squeeze,
                plan.mask_wkb,
                transform,
                output.nodata,
            )
        layer: dict[Any, Any] = {}
        for iy, (yo, h) in enumerate(zip(yoffs, ychunks, strict=True)):
            for ix, (xo, w) in enumerate(zip(xoffs, xchunks, strict=True)):
                k = _part_at(sources, yo, xo)
                r, c = sources[k].target[:2]
                window = (slice(yo - r, yo - r + h), slice(xo - c, xo - c + w))
                key = (name, iy, ix) if squeeze else (name, 0, iy, ix)
                index = window if squeeze else (slice(0, output.bands), *window)
                layer[key] = (getter, f"{src_name}-{k}", index)
        hlg = HighLevelGraph(
            {f"await-{tok}": awaits, src_name: src_layer, name: layer},
            {f"await-{tok}": set(), src_name: {f"await-{tok}"}, name: {src_name}},
        )
        ychunks_t, xchunks_t = tuple(ychunks), tuple(xchunks)
        if squeeze:
            arr_chunks: tuple = (ychunks_t, xchunks_t)
            dims: tuple[str, ...] = ("y", "x")
        else:
            arr_chunks = ((output.bands,), ychunks_t, xchunks_t)
            dims = (band_dims[output.identifier], "y", "x")
            coords[dims[0]] = np.arange(1, output.bands + 1)
        arr = da.Array(hlg, name, arr_chunks, meta=np.empty((0,) * len(arr_chunks), dtype))
        var_attrs = {}
        if masked:
            var_attrs["_FillValue"] = np.nan
        elif output.nodata is not None:
            var_attrs["_FillValue"] = dtype.type(output.nodata)
        data_vars[output.identifier] = xr.Variable(
            dims, arr, attrs=var_attrs, encoding={"grid_mapping": "spatial_ref"}
        )
    ds = _assemble(data_vars, coords, grid)
    base: dict[str, Any] = {"token": plan.token, "requests": " ".join(urls)}
    if plan.label is not None:
        base["label"] = _attr_value(plan.label)
    if plan.time_range:
        base["time_from"], base["time_to"] = (str(t) for t in plan.time_range)
    ds.attrs.update(base)
    if attrs:
        ds.attrs.update(attrs)
    return ds
