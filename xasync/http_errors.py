"""Typed errors from HTTP answers and failures, shared by the API calls and the token fetch.

Pure functions of an :class:`httpx.Response` (or an :class:`httpx.TransportError`): the mapping
of error statuses to :mod:`xasync.errors` types, the service's ``RestErrorWrapper`` body
(spec 3.2/3.3) and the ``Retry-After`` header.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from xasync._contract import RETRY_AFTER_UNIT_SECONDS
from xasync.errors import ApiError, RateLimited, TransportError, error_class_for_status

__all__ = ["error_from_response", "json_body", "retry_after_seconds", "transport_error"]

#: Failures that certainly happened before any byte of the request left this host.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def json_body(response: httpx.Response) -> Any:
    """The JSON body of ``response``, or None when it has none or it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header (milliseconds on Sentinel Hub) in seconds, if valid."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw) * RETRY_AFTER_UNIT_SECONDS
    except ValueError:
        return None
    return value if value >= 0 else None


def error_from_response(
    response: httpx.Response,
    *,
    request_id: str | None = None,
    redact: Callable[[str], str] | None = None,
    prefix: str = "",
) -> ApiError:
    """The typed error for an error answer (a ``RestErrorWrapper`` body is optional).

    ``prefix`` is put before the service's message (e.g. which endpoint answered).
    """
    status = response.status_code
    payload = json_body(response)
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    message = code = errors = None
    if isinstance(inner, dict):
        message = inner.get("message") or inner.get("reason")
        code = inner.get("code")
        errors = inner.get("errors") or None
    elif isinstance(inner, str):
        message = ": ".join(str(p) for p in (inner, payload.get("error_description")) if p)
    if not message:
        message = response.text.strip()[:300] or response.reason_phrase or "no message"
    message = prefix + str(message)
    if redact is not None:
        message = redact(message)
    cls = error_class_for_status(status)
    kwargs: dict[str, Any] = {
        "status_code": status,
        "code": str(code) if code is not None else None,
        "request_id": request_id,
        "errors": errors,
    }
    if cls is RateLimited:
        return RateLimited(message, retry_after=retry_after_seconds(response), **kwargs)
    return cls(message, **kwargs)


def transport_error(
    exc: httpx.TransportError, method: str, url: str, *, sent: bool | None = None
) -> TransportError:
    """Wrap an httpx transport failure.

    ``maybe_sent`` is False only if nothing left this host, or when ``sent=False`` says the
    failed exchange was a step before the request itself (the token fetch).
    """
    maybe_sent = not isinstance(exc, _NOT_SENT) if sent is None else sent
    where = f"{method} {httpx.URL(url).copy_with(query=None, fragment=None)}"
    return TransportError(
        f"{where}: {type(exc).__name__}: {exc}"
        + ("" if maybe_sent else " (the request was not sent)"),
        maybe_sent=maybe_sent,
    )
