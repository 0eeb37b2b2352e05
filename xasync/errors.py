"""The exception and warning family of xasync.

Every error the library raises on purpose is an :class:`XasyncError`. Validation errors are also
:class:`ValueError`, so code written against plain Python keeps working.
"""

from __future__ import annotations

from typing import Any


class XasyncError(Exception):
    """Base class of every error xasync raises on purpose."""


class ConfigError(XasyncError):
    """Configuration or credentials are missing or inconsistent."""


class ValidationError(XasyncError, ValueError):
    """An input was rejected before any request was paid for."""


class AuthError(XasyncError):
    """The OAuth2 token could not be obtained (bad credentials, token endpoint down)."""


class TransportError(XasyncError):
    """The HTTP exchange itself failed (connection refused, reset, timeout).

    ``maybe_sent`` is False only when the request certainly never reached the server.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class ApiError(XasyncError):
    """The service answered with an error status.

    Attributes
    ----------
    status_code : int
        The HTTP status.
    message : str
        The service's own message (from its ``{"error": {...}}`` body when there is one).
    code : str or None
        The service's error code, e.g. ``COMMON_BAD_PAYLOAD``.
    request_id : str or None
        The async request id, when the error concerns one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        errors: Any = None,
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}" + (f" [{code}]" if code else ""))
        self.status_code = status_code
        self.message = message
        self.code = code
        self.request_id = request_id
        self.errors = errors


class BadRequest(ApiError, ValueError):
    """HTTP 400: the service rejected the request body."""


class Unauthorized(ApiError):
    """HTTP 401: the token is missing, expired or invalid."""


class Forbidden(ApiError):
    """HTTP 403: the account may not do this (permissions, quota)."""


class NotFound(ApiError):
    """HTTP 404 where a resource was expected."""


class RateLimited(ApiError):
    """HTTP 429: too many concurrent async requests, or a rate limit. ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """HTTP 5xx: a fault on the service's side."""


class ProcessingError(XasyncError):
    """A request was accepted but failed while processing; carries the service's error.json message.

    Attributes
    ----------
    message : str
        The message from ``error.json``.
    request_id : str or None
        The async request id.
    row : object
        The label of the GeoDataFrame row the request belongs to, when known.
    """

    def __init__(self, message: str, *, request_id: str | None = None, row: Any = None) -> None:
        where = f" (row {row!r}" + (f", request {request_id}" if request_id else "") + ")"
        super().__init__(f"processing failed{where if row is not None else ''}: {message}")
        self.message = message
        self.request_id = request_id
        self.row = row

    def __reduce__(self) -> tuple:
        # keyword-only arguments: rebuild from the parts, not from the formatted text
        return (_rebuild_processing_error, (self.message, self.request_id, self.row))


def _rebuild_processing_error(message: str, request_id: str | None, row: Any) -> ProcessingError:
    return ProcessingError(message, request_id=request_id, row=row)


#: Alias with the name of the design map.
DeliveryError = ProcessingError


class DeliveryTimeout(XasyncError, TimeoutError):
    """Nothing was delivered within the allowed time."""


class XasyncWarning(UserWarning):
    """Warnings of xasync."""


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


def error_class_for_status(status_code: int) -> type[ApiError]:
    """Return the :class:`ApiError` subclass for an HTTP status code."""
    if status_code >= 500:
        return ServerError
    return _STATUS_ERRORS.get(status_code, ApiError)
