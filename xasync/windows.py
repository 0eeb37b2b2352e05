"""Windowed access to one delivered output: the array-like that the chunk tasks index.

``open_source`` (a task) wraps a delivered file's URL in a :class:`WindowSource`; indexing it
reads only the window it touches (:func:`read_masked`, through :func:`xasync.reader.read_window`),
masks pixels outside the geometry when asked, and checks the file against the declared output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from xasync.reader import DeclaredOutput, ReaderConfig, read_window

__all__ = ["WindowSource", "open_source", "read_masked"]


def read_masked(
    url: str,
    reader: ReaderConfig,
    window: tuple[int, int, int, int],
    dtype: np.dtype,
    grid_shape: tuple[int, int],
    mask_wkb: bytes | None,
    transform: tuple[float, ...] | None,
    nodata: float | None,
    declared: DeclaredOutput | None = None,
) -> np.ndarray:
    """Read ``(row_off, col_off, height, width)`` of a delivered file as (bands, h, w).

    With ``declared``, a file whose band count or data type differs from the declared output
    raises :class:`~xasync.errors.OutputMismatchError` (never a silent cast or a wrong shape).
    """
    row_off, col_off, height, width = window
    arr = read_window(
        url,
        reader,
        Window(col_off, row_off, width, height),
        out_dtype=dtype,
        expected_shape=grid_shape,
        declared=declared,
    )
    if mask_wkb is not None:
        import shapely
        from rasterio.features import geometry_mask

        geom = shapely.from_wkb(mask_wkb)
        a, b, c, d, e, f = transform
        win_t = Affine(a, b, c + col_off * a + row_off * b, d, e, f + col_off * d + row_off * e)
        outside = geometry_mask([geom], out_shape=(height, width), transform=win_t)
        if nodata is not None and not np.isnan(nodata):
            arr[arr == nodata] = np.nan
        arr[:, outside] = np.nan
    return arr


def _span(index: Any, size: int) -> tuple[int, int, Any]:
    """Pixel range ``[lo, hi)`` an index of one axis touches, and the index relative to ``lo``."""
    if isinstance(index, slice):
        start, stop, step = index.indices(size)
        if step > 0:
            stop = max(stop, start)
            return start, stop, slice(0, stop - start, step)
        return 0, size, index
    if isinstance(index, (int, np.integer)):
        k = int(index) + (size if index < 0 else 0)
        return k, k + 1, 0
    positions = np.asarray(index)
    if positions.dtype == bool:
        positions = np.flatnonzero(positions)
    positions = np.where(positions < 0, positions + size, positions)
    if positions.size == 0:
        return 0, 0, positions
    lo = int(positions.min())
    return lo, int(positions.max()) + 1, positions - lo


def _take(arr: np.ndarray, axis: int, index: Any) -> np.ndarray:
    if isinstance(index, slice):
        return arr[(slice(None),) * axis + (index,)]
    return np.take(arr, index, axis=axis)


class WindowSource:
    """One delivered output as an array: indexing it reads only the window it touches.

    Chunk tasks are ``getter(source, index)`` tasks, so dask fuses a later slice (``isel``,
    ``[...]``) into the chunk's index and a small window of a big delivery reads only its tiles,
    whatever the chunk size.
    """

    def __init__(
        self,
        url: str,
        reader: ReaderConfig,
        dtype: str,
        grid_shape: tuple[int, int],
        bands: int,
        squeeze: bool,
        mask_wkb: bytes | None,
        transform: tuple[float, ...] | None,
        nodata: float | None,
        declared: DeclaredOutput | None = None,
    ) -> None:
        self.url, self.reader, self.dtype = url, reader, np.dtype(dtype)
        self.declared = declared
        self.grid_shape, self.bands, self.squeeze = grid_shape, bands, squeeze
        self.mask_wkb, self.transform, self.nodata = mask_wkb, transform, nodata
        self.shape = grid_shape if squeeze else (bands, *grid_shape)
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        if any(i is None or i is Ellipsis for i in index) or len(index) > self.ndim:
            return self._read((0, self.grid_shape[0]), (0, self.grid_shape[1]))[index]
        index = index + (slice(None),) * (self.ndim - len(index))
        band_index, y_index, x_index = (None, *index) if self.squeeze else index
        y0, y1, y_rel = _span(y_index, self.grid_shape[0])
        x0, x1, x_rel = _span(x_index, self.grid_shape[1])
        arr = self._read((y0, y1), (x0, x1))
        if self.squeeze:
            arr = arr[0]
            return _take(_take(arr, 1, x_rel), 0, y_rel)
        return _take(_take(_take(arr, 2, x_rel), 1, y_rel), 0, band_index)

    def _read(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        (y0, y1), (x0, x1) = rows, cols
        if y1 <= y0 or x1 <= x0:
            return np.empty((self.bands, max(0, y1 - y0), max(0, x1 - x0)), self.dtype)
        window = (y0, x0, y1 - y0, x1 - x0)
        return read_masked(
            self.url,
            self.reader,
            window,
            self.dtype,
            self.grid_shape,
            self.mask_wkb,
            self.transform,
            self.nodata,
            self.declared,
        )


def open_source(
    outputs: Mapping[str, str],
    identifier: str,
    reader: ReaderConfig,
    dtype: str,
    grid_shape: tuple[int, int],
    bands: int,
    squeeze: bool,
    mask_wkb: bytes | None,
    transform: tuple[float, ...] | None,
    nodata: float | None,
    declared: DeclaredOutput | None = None,
) -> WindowSource:
    """Task: the delivered output as an array-like (opens nothing until indexed)."""
    return WindowSource(
        outputs[identifier],
        reader,
        dtype,
        grid_shape,
        bands,
        squeeze,
        mask_wkb,
        transform,
        nodata,
        declared,
    )
