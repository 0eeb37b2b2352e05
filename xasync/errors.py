"""The exception family of xasync: every class lives here.

Every error the library raises on purpose is an :class:`XasyncError`. Validation errors are also
:class:`ValueError`, so code written against plain Python keeps working. Every exception pickles
with its fields (dask sends them from workers to the client), see :meth:`XasyncError.__reduce__`.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[XasyncError], args: tuple, state: dict[str, Any]) -> XasyncError:
    """Unpickle without calling ``cls.__init__`` (whose keyword-only fields ``args`` lacks)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class XasyncError(Exception):
    """Base class of every error xasync raises on purpose."""

    def __reduce__(self) -> tuple:
        # The default (cls(*args)) would call __init__ with the formatted message only, which
        # fails or loses fields for classes with keyword-only fields: rebuild from the parts.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(XasyncError):
    """Configuration or credentials are missing or inconsistent."""


class ValidationError(XasyncError, ValueError):
    """An input was rejected before any request was paid for."""


# -- validation, before paying ------------------------------------------------------------------
class GeometryError(ValidationError):
    """The GeoDataFrame or one of its geometries cannot be requested (empty, invalid, not areal)."""


class BudgetExceeded(ValidationError):
    """The requests a call would buy are estimated above ``max_pu`` (nothing was paid).

    Attributes
    ----------
    estimate_pu : float
        The estimated cost of the requests that would be bought (what ``estimate`` gives as
        ``attrs["pu_to_pay"]``).
    max_pu : float
        The budget.
    requests : int
        How many distinct requests the estimate covers.
    existing_pu : dict or None
        The estimated PU of the call's requests that exist already and are not paid again,
        by state (``"delivered"``, ``"running"`` and, without ``resubmit_failed``,
        ``"failed"``); None when the delivery was not looked at (every request counted).

    """

    def __init__(
        self,
        estimate_pu: float,
        max_pu: float,
        requests: int,
        *,
        exact: bool = True,
        existing: dict[str, float] | None = None,
    ):
        self.estimate_pu = float(estimate_pu)
        self.max_pu = float(max_pu)
        self.requests = int(requests)
        self.existing_pu = None if existing is None else {k: float(v) for k, v in existing.items()}
        bound = "" if exact else "at least "
        if existing is None:
            head = f"the {requests} requests of this call are estimated at"
            tail = ""
        else:
            head = f"the {requests} requests this call would buy are estimated at"
            parts = [
                f"{pu:.2f} PU {state}" + (" (resubmit_failed=False)" if state == "failed" else "")
                for state, pu in existing.items()
                if pu > 0
            ]
            tail = (
                f" Not counted, already in the delivery: {', '.join(parts)}."
                if parts
                else " Nothing of this call is in the delivery yet."
            )
        super().__init__(
            f"{head} {bound}{estimate_pu:.2f} PU, above the budget max_pu={max_pu:g}; nothing "
            f"was submitted.{tail} See gdf.xasync.estimate(...) (its pu_to_pay column) for the "
            "cost of each row.",
        )


class LabelError(ValidationError):
    """A row label cannot name a row (NaN or None in the GeoDataFrame's index)."""


class CrsError(ValidationError):
    """The CRS is missing, unknown, or has no EPSG code the service accepts."""


class TimeRangeError(ValidationError):
    """The time range is unparsable, reversed or of zero length."""


class DeliveryUrlError(ValidationError):
    """The delivery location is not ``s3://bucket/prefix`` (or its extras are unknown)."""


class DeliveryAccessError(ValidationError):
    """The delivery bucket cannot be written (or read) with the given credentials."""


class CollectionError(ValidationError):
    """An input data collection type is unknown or malformed."""


class ResponseError(ValidationError):
    """A requested response is not an output of the evalscript."""


class OptionError(ValidationError):
    """Inconsistent or unknown options (e.g. both size and resolution, or bad ``chunks``)."""


class GridError(ValidationError):
    """The requested pixel grid is impossible (bad resolution/size, too many pixels)."""


class EvalscriptError(ValidationError):
    """The evalscript's outputs cannot be known (no setup, bad setup, unknown sampleType)."""


class TemporalError(ValidationError):
    """``freq=``, ``temporal=``, ``reducer=`` or the evalscript cannot make a time series."""


# -- credentials and HTTP -----------------------------------------------------------------------
class AuthError(XasyncError):
    """The OAuth2 token could not be obtained: the credentials were refused."""


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


# -- after paying -------------------------------------------------------------------------------
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


class OutputMismatchError(XasyncError, ValueError):
    """A delivered file does not match its declared output (band count or data type).

    Raised when reading, instead of a silent cast or an array of the wrong shape: the declared
    output (from ``setup()`` or ``outputs=``) is wrong for what the service wrote.

    Attributes
    ----------
    output : str
        The output identifier.
    what : str
        ``"bands"`` or ``"dtype"``.
    declared, delivered : object
        The declared value and the delivered file's value.
    url : str
        The delivered file.
    """

    def __init__(self, output: str, what: str, declared: Any, delivered: Any, url: str) -> None:
        super().__init__(
            f"output {output!r}: declared {what} {declared!r} but the delivered file has "
            f"{delivered!r} ({url}); fix outputs= (or the evalscript's setup())"
        )
        self.output = output
        self.what = what
        self.declared = declared
        self.delivered = delivered
        self.url = url


class DeliveryTimeout(XasyncError, TimeoutError):
    """Nothing was delivered within the allowed time."""


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
