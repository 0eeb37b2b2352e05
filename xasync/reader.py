"""Windowed GeoTIFF reads through fsspec, made to run inside dask tasks.

The read path (measured in FIELD-NOTES "Reading a delivered GeoTIFF from S3"): rasterio opens the
file with ``opener=`` an ``s3fs.S3FileSystem(default_block_size=32 KiB,
default_cache_type="bytes")`` and ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``, so opening costs a
few small GETs and one window costs about the bytes of the tiles (or strips) it touches.

Everything here is built INSIDE the task from a small picklable :class:`ReaderConfig`: GDAL
environments are not carried to dask workers and rasterio datasets do not pickle. Open datasets
are cached per thread (rasterio handles are not thread-safe), keyed by ``(url, config)``, so the
chunks of one file do not reopen it each time.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from xasync.errors import OutputMismatchError, ValidationError, XasyncError
from xasync.opener import Container

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DeclaredOutput",
    "ReaderConfig",
    "cache_stats",
    "clear_cache",
    "filesystem_for",
    "read_window",
]

#: Block size of the s3fs file objects GDAL reads through: small, since GDAL asks for exactly
#: the bytes it needs (header, tile offsets, tiles).
DEFAULT_BLOCK_SIZE = 32 * 1024  # see docs/performance.md: 1.17x the tiles of a 512² window
#: Open datasets kept per thread.
MAX_OPEN_PER_THREAD = 16

_SECRET_WORDS = ("secret", "token", "password", "key", "session", "credential", "auth")


def _mask(value: Any, name: str = "") -> Any:
    """A copy of ``value`` with secret-looking entries replaced by ``"***"``."""
    if isinstance(value, Mapping):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v, name) for v in value)
    if name and any(w in name.lower() for w in _SECRET_WORDS) and value is not None:
        return "***"
    return value


@dataclass(frozen=True, eq=False)
class ReaderConfig:
    """How workers read delivered files: small, frozen, hashable and picklable.

    Parameters
    ----------
    storage_options : mapping, optional
        fsspec/s3fs options exactly as the user passed them (endpoint, keys, ...). They travel in
        the dask graph, so any key in them reaches the workers: that is the point of passing
        them (a worker cannot otherwise reach a custom endpoint). With None, workers use their
        own fsspec/AWS environment and the graph carries no credentials.
    block_size : int, default 32 KiB
        s3fs block size for the file objects GDAL reads through.
    gdal_env : tuple of (str, str) pairs
        Extra GDAL configuration options entered around each read.

    Notes
    -----
    The repr masks secret-looking values; equality and hashing use a digest of the options.

    """

    storage_options: Mapping[str, Any] | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    gdal_env: tuple[tuple[str, str], ...] = ()
    _digest: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.storage_options is not None and not isinstance(self.storage_options, Mapping):
            raise ValidationError("storage_options must be a mapping or None")
        if not isinstance(self.block_size, int) or self.block_size <= 0:
            raise ValidationError(f"block_size must be a positive int, got {self.block_size!r}")
        try:
            env = tuple((str(k), str(v)) for k, v in self.gdal_env)
        except (TypeError, ValueError) as exc:
            raise ValidationError("gdal_env must be a tuple of (name, value) pairs") from exc
        object.__setattr__(self, "gdal_env", env)
        if self.storage_options is not None:
            object.__setattr__(self, "storage_options", dict(self.storage_options))
        try:
            canon = json.dumps(
                [self.storage_options, self.block_size, env],
                sort_keys=True,
                default=repr,
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError("storage_options must be JSON-like") from exc
        object.__setattr__(self, "_digest", hashlib.sha256(canon.encode()).hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReaderConfig) and other._digest == self._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        opts = None if self.storage_options is None else _mask(self.storage_options)
        return (
            f"ReaderConfig(storage_options={opts!r}, block_size={self.block_size}, "
            f"gdal_env={_mask(dict(self.gdal_env)) if self.gdal_env else ()!r})"
        )

    def __dask_tokenize__(self) -> tuple[str, str]:
        # A digest, so graph key names never embed option values.
        return ("xasync.ReaderConfig", self._digest)


def filesystem_for(url: str, config: ReaderConfig) -> Any:
    """The fsspec filesystem ``url`` is read through (s3/gs get a tuned s3fs/gcsfs filesystem).

    fsspec caches instances per arguments and thread, so calling this per task is cheap.
    """
    import fsspec

    protocol = url.split("://", 1)[0] if "://" in url else "file"
    options = dict(config.storage_options or {})
    if protocol in ("s3", "s3a"):
        import s3fs

        options.setdefault("default_block_size", config.block_size)
        options.setdefault("default_cache_type", "bytes")
        return s3fs.S3FileSystem(**options)
    if protocol in ("gs", "gcs"):
        from xasync.gcs import gcs_filesystem  # the plain JSON-API class (no gRPC probe)

        options.setdefault("block_size", config.block_size)
        return gcs_filesystem(options)
    return fsspec.filesystem(protocol, **options)


# --------------------------------------------------------------------------- dataset cache

_local = threading.local()
_stats_lock = threading.Lock()
_stats = {"opens": 0, "hits": 0}


class _ThreadState:
    """Datasets opened by one thread, and the one context they are used in.

    rasterio 1.4 keeps opener registrations in a ContextVar, while dask runs each task in a
    fresh copy of the context: a dataset opened in one task and read or closed in another would
    lose its registration. Opening, reading and closing cached datasets therefore always run in
    this one context per thread, including when the thread goes away.
    """

    def __init__(self) -> None:
        self.context = contextvars.Context()
        self.datasets: OrderedDict[tuple[str, ReaderConfig], Any] = OrderedDict()

    def close_all(self) -> None:
        while self.datasets:
            _, ds = self.datasets.popitem()
            self.context.run(ds.close)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit there is nobody to tell
            self.close_all()


def _state() -> _ThreadState:
    state = getattr(_local, "state", None)
    if state is None:
        state = _local.state = _ThreadState()
    return state


def _cache() -> OrderedDict:
    return _state().datasets


def _context() -> contextvars.Context:
    return _state().context


def cache_stats() -> dict[str, int]:
    """Counts of dataset opens and cache hits in this process (all threads)."""
    with _stats_lock:
        return dict(_stats)


def clear_cache() -> None:
    """Close the datasets cached by the calling thread and reset the counters."""
    _state().close_all()
    with _stats_lock:
        _stats.update(opens=0, hits=0)


def _env(config: ReaderConfig) -> rasterio.Env:
    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **dict(config.gdal_env))


def _open(url: str, config: ReaderConfig) -> Any:
    key = (url, config)
    cache = _cache()
    ds = cache.get(key)
    if ds is not None and not ds.closed:
        cache.move_to_end(key)
        with _stats_lock:
            _stats["hits"] += 1
        return ds
    if "://" in url and not url.startswith("file://"):
        fs = filesystem_for(url, config)
        fs.invalidate_cache(url)  # a listing cached before the delivery must not hide it
        container = Container(fs, url)
        ds = rasterio.open(container.virtual, opener=container)
    else:
        ds = rasterio.open(url.removeprefix("file://"))
    with _stats_lock:
        _stats["opens"] += 1
    logger.debug("opened %s (%dx%d, %d bands)", url, ds.width, ds.height, ds.count)
    cache[key] = ds
    while len(cache) > MAX_OPEN_PER_THREAD:
        _, old = cache.popitem(last=False)
        old.close()
    return ds


@dataclass(frozen=True)
class DeclaredOutput:
    """What a delivered file must be: the output's identifier, band count and numpy dtype name."""

    identifier: str
    bands: int
    dtype: str


def read_window(
    url: str,
    config: ReaderConfig,
    window: Window,
    *,
    out_dtype: Any = None,
    expected_shape: tuple[int, int] | None = None,
    declared: DeclaredOutput | None = None,
) -> np.ndarray:
    """Read one window of all bands of a GeoTIFF.

    Parameters
    ----------
    url : str
        ``s3://bucket/key.tif`` (or any fsspec URL, or a local path).
    config : ReaderConfig
        How to reach it.
    window : rasterio.windows.Window
        Integer pixel window; parts outside the file are the file's nodata, else 0 (NaN for
        floats).
    out_dtype : dtype, optional
        Cast the result to this dtype (default: the file's).
    expected_shape : (height, width), optional
        When given, a file of another size raises :class:`xasync.errors.XasyncError`.
    declared : DeclaredOutput, optional
        When given, a file whose band count or data type differs raises
        :class:`xasync.errors.OutputMismatchError` naming the output and both values.

    Returns
    -------
    numpy.ndarray
        Shape ``(bands, window.height, window.width)``.

    """
    col_off, row_off = int(window.col_off), int(window.row_off)
    width, height = int(window.width), int(window.height)
    if width <= 0 or height <= 0:
        raise ValidationError(f"empty window {window!r}")
    return _context().run(
        _read, url, config, row_off, col_off, height, width, out_dtype, expected_shape, declared
    )


def _check_file(
    ds: Any, url: str, expected_shape: tuple[int, int] | None, declared: DeclaredOutput | None
) -> None:
    if expected_shape is not None and (ds.height, ds.width) != tuple(expected_shape):
        raise XasyncError(
            f"{url} is {ds.height}x{ds.width} px, expected {expected_shape[0]}x{expected_shape[1]}",
        )
    if declared is None:
        return
    if ds.count != declared.bands:
        raise OutputMismatchError(declared.identifier, "bands", declared.bands, ds.count, url)
    if np.dtype(ds.dtypes[0]).name != declared.dtype:
        raise OutputMismatchError(
            declared.identifier, "dtype", declared.dtype, np.dtype(ds.dtypes[0]).name, url
        )


def _read(
    url: str,
    config: ReaderConfig,
    row_off: int,
    col_off: int,
    height: int,
    width: int,
    out_dtype: Any,
    expected_shape: tuple[int, int] | None,
    declared: DeclaredOutput | None,
) -> np.ndarray:
    with _env(config):
        ds = _open(url, config)
        _check_file(ds, url, expected_shape, declared)
        dtype = np.dtype(out_dtype if out_dtype is not None else ds.dtypes[0])
        fill_value = ds.nodata
        if fill_value is None:
            fill_value = np.nan if dtype.kind == "f" else 0
        r0, r1 = max(row_off, 0), min(row_off + height, ds.height)
        c0, c1 = max(col_off, 0), min(col_off + width, ds.width)
        if r0 == row_off and c0 == col_off and r1 - r0 == height and c1 - c0 == width:
            data = ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))
            return data.astype(dtype, copy=False)
        out = np.full((ds.count, height, width), fill_value, dtype=dtype)
        if r1 > r0 and c1 > c0:
            data = ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))
            out[:, r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off] = data
        return out
