"""xasync: the Sentinel Hub Asynchronous Processing API as lazy, dask-backed xarray Datasets."""

from __future__ import annotations

import logging

from xasync.errors import (
    ApiError,
    AuthError,
    BadRequest,
    ConfigError,
    DeliveryTimeout,
    Forbidden,
    NotFound,
    ProcessingError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationError,
    XasyncError,
    XasyncWarning,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ApiError",
    "AuthError",
    "BadRequest",
    "ConfigError",
    "DeliveryTimeout",
    "Forbidden",
    "NotFound",
    "ProcessingError",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "XasyncError",
    "XasyncWarning",
    "__version__",
]
