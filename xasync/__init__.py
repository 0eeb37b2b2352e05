"""xasync: the Sentinel Hub Asynchronous Processing API as lazy, dask-backed xarray Datasets.

``import xasync`` registers the ``.xasync`` accessor on GeoDataFrames::

    results = gdf.xasync.process(evalscript, time=("2024-06-01", "2024-06-30"), resolution=10,
                                 crs="utm", delivery="s3://bucket/prefix")
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from xasync import accessor as _accessor  # noqa: F401  (registers gdf.xasync)
from xasync.errors import (
    ApiError,
    AuthError,
    BadRequest,
    CollectionError,
    ConfigError,
    CrsError,
    DeliveryAccessError,
    DeliveryTimeout,
    DeliveryUrlError,
    EvalscriptError,
    Forbidden,
    GeometryError,
    GridError,
    LabelError,
    NotFound,
    OptionError,
    OutputMismatchError,
    ProcessingError,
    RateLimited,
    ResponseError,
    ServerError,
    TimeRangeError,
    TransportError,
    Unauthorized,
    ValidationError,
    XasyncError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# The rest of the public API is imported on first use, so that ``import xasync.emulator`` (which
# needs only ``xasync._contract``) does not pull in the client, dask and xarray.
_LAZY = {
    "Client": "xasync.client",
    "Config": "xasync.config",
    "State": "xasync.jobs",
    "process": "xasync.processing",
    "open_delivery": "xasync.reattach",
    "Results": "xasync.results",
    "SubmitOptions": "xasync.submitter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xasync' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ApiError",
    "AuthError",
    "BadRequest",
    "Client",
    "CollectionError",
    "Config",
    "ConfigError",
    "CrsError",
    "DeliveryAccessError",
    "DeliveryTimeout",
    "DeliveryUrlError",
    "EvalscriptError",
    "Forbidden",
    "GeometryError",
    "GridError",
    "LabelError",
    "NotFound",
    "OptionError",
    "OutputMismatchError",
    "ProcessingError",
    "RateLimited",
    "ResponseError",
    "Results",
    "ServerError",
    "State",
    "SubmitOptions",
    "TimeRangeError",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "XasyncError",
    "__version__",
    "open_delivery",
    "process",
]
