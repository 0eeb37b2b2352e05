"""The thin HTTP layer over the Async API: create a request, ask its status.

:class:`AsyncApi` (an :class:`httpx.AsyncClient`, for the submitter's event loop) and its
blocking twin :class:`Api` (an :class:`httpx.Client`) share every decision through the pure
functions below: the URLs and headers, the parsing of answers, the mapping of error statuses to
:mod:`xasync.errors` types and the retry policy. Only the sending and the sleeping differ.

Retry policy
------------
* ``status`` is idempotent: 5xx, 429 (waiting at least ``Retry-After``), transport errors and an
  unavailable token endpoint are retried with exponential back-off and full jitter, at most
  ``config.max_retries`` times.
* ``create`` buys something, so it is retried only when the request certainly never reached the
  service (connection refused, connect timeout, token not obtained). Everything else is raised for
  the caller to decide after looking at the delivery prefix: :class:`~xasync.errors.ServerError`,
  :class:`~xasync.errors.RateLimited`, or :class:`~xasync.errors.TransportError` with
  ``maybe_sent=True``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

import httpx

from xasync._contract import RETRY_AFTER_UNIT_SECONDS, STATUS_RUNNING
from xasync.auth import ClientCredentialsAuth, TokenEndpointUnavailable
from xasync.config import Config
from xasync.errors import (
    ApiError,
    RateLimited,
    ServerError,
    TransportError,
    XasyncError,
    error_class_for_status,
)

logger = logging.getLogger(__name__)

__all__ = ["Api", "AsyncApi"]

#: Longest ``Retry-After`` honoured as such (seconds); longer hints are capped.
MAX_RETRY_AFTER = 120.0
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


# -- pure pieces shared by both facades ---------------------------------------------------------
def endpoint(config: Config, request_id: str | None = None) -> str:
    """The create URL, or the status URL of ``request_id``."""
    url = config.base_url + config.api_path
    return url if request_id is None else f"{url}/{request_id}"


def default_headers() -> dict[str, str]:
    """Headers of every API call (the bearer token is added by the auth)."""
    import xasync  # at call time: xasync/__init__.py imports this module

    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"xasync/{xasync.__version__}",
    }


def error_from_response(
    response: httpx.Response, *, request_id: str | None = None, redact: Any = None
) -> ApiError:
    """The typed error for an error answer (RestErrorWrapper body optional, spec 3.2/3.3)."""
    status = response.status_code
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        payload = None
    inner = payload.get("error", payload) if isinstance(payload, dict) else None
    message = code = errors = None
    if isinstance(inner, dict):
        message = inner.get("message") or inner.get("reason")
        code = inner.get("code")
        errors = inner.get("errors") or None
    elif isinstance(inner, str):
        message = inner
    if not message:
        message = response.text.strip()[:300] or response.reason_phrase or "no message"
    message = str(message)
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


def parse_create(response: httpx.Response, redact: Any = None) -> str:
    """The request id of a create answer; raise the typed error of a failed one."""
    if response.status_code != 200:
        raise error_from_response(response, redact=redact)
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict) or not payload.get("id"):
        # Accepted or not? The caller must check the delivery prefix, as for a lost answer.
        raise ApiError("create answered 200 without a request id", status_code=200)
    return str(payload["id"])


def parse_status(response: httpx.Response, request_id: str, redact: Any = None) -> bool:
    """True while the request runs (200), False once it is gone (404: finished or unknown)."""
    if response.status_code == 404:
        return False
    if response.status_code != 200:
        raise error_from_response(response, request_id=request_id, redact=redact)
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        payload = {}
    status = payload.get("status") if isinstance(payload, dict) else None
    if status not in (None, STATUS_RUNNING):
        logger.warning("request %s: unexpected status %r, taken as running", request_id, status)
    return True


def transport_error(exc: httpx.TransportError, method: str, url: str) -> TransportError:
    """Wrap an httpx transport failure; ``maybe_sent`` False only if nothing left this host."""
    maybe_sent = not isinstance(exc, _NOT_SENT)
    path = httpx.URL(url).path
    return TransportError(
        f"{method} {path}: {type(exc).__name__}: {exc}"
        + ("" if maybe_sent else " (the request was not sent)"),
        maybe_sent=maybe_sent,
    )


def retry_delay(config: Config, attempt: int, error: XasyncError, *, create: bool) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``, or None to give up and raise."""
    if attempt >= config.max_retries:
        return None
    if create:
        retryable = isinstance(error, TokenEndpointUnavailable) or (
            isinstance(error, TransportError) and not error.maybe_sent
        )
    else:
        retryable = isinstance(error, (ServerError, RateLimited, TransportError))
        retryable = retryable or isinstance(error, TokenEndpointUnavailable)
    if not retryable:
        return None
    delay = random.uniform(0.0, min(config.backoff_max, config.backoff_base * 2**attempt))
    if isinstance(error, RateLimited) and error.retry_after is not None:
        delay = max(delay, min(error.retry_after, MAX_RETRY_AFTER))
    return delay


def _log(method: str, url: str, response: httpx.Response, started: float, rid: str | None) -> None:
    logger.info(
        "%s %s -> %s%s",
        method,
        httpx.URL(url).path,
        response.status_code,
        f" (request {rid})" if rid else "",
    )
    logger.debug("%s %s took %.3f s", method, httpx.URL(url).path, time.monotonic() - started)


class _Base:
    """Configuration, auth and the per-call bookkeeping shared by both facades."""

    def __init__(self, config: Config, auth: ClientCredentialsAuth | None) -> None:
        if auth is None:
            config.require_credentials()
            assert config.client_id is not None and config.client_secret is not None
            auth = ClientCredentialsAuth(config.token_url, config.client_id, config.client_secret)
        self.config = config
        self.auth = auth

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.base_url}{self.config.api_path})"

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} holds credentials and is not picklable")

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "auth": self.auth,
            "headers": default_headers(),
            "timeout": httpx.Timeout(self.config.timeout),
            "follow_redirects": False,
        }

    def _give_up(self, error: XasyncError, op: str, attempt: int, create: bool) -> float | None:
        delay = retry_delay(self.config, attempt, error, create=create)
        if delay is None:
            if attempt:
                logger.warning("%s failed after %d retries: %s", op, attempt, error)
            return None
        logger.info("%s: %s; retry %d in %.2f s", op, type(error).__name__, attempt + 1, delay)
        return delay


class AsyncApi(_Base):
    """The Async API over :class:`httpx.AsyncClient`, for use inside one event loop.

    Parameters
    ----------
    config : Config
        Endpoints, credentials, timeout and retry settings.
    auth : ClientCredentialsAuth, optional
        Share one (and so its token cache) between several API objects.
    transport : httpx.AsyncBaseTransport, optional
        A custom transport (tests).
    """

    def __init__(
        self,
        config: Config,
        *,
        auth: ClientCredentialsAuth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, auth)
        self._http = httpx.AsyncClient(transport=transport, **self._client_kwargs())

    async def _call(
        self, method: str, url: str, body: dict | None, rid: str | None, create: bool
    ) -> Any:
        op = f"{method} {httpx.URL(url).path}"
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = await self._http.request(method, url, json=body)
                _log(method, url, response, started, rid)
                if create:
                    return parse_create(response, self.auth.redact)
                assert rid is not None
                return parse_status(response, rid, self.auth.redact)
            except httpx.TransportError as exc:
                error: XasyncError = transport_error(exc, method, url)
            except XasyncError as exc:
                error = exc
            delay = self._give_up(error, op, attempt, create)
            if delay is None:
                raise error
            attempt += 1
            await asyncio.sleep(delay)

    async def create(self, body: dict) -> str:
        """Submit one async request; return its id. Never retried once it may have been sent.

        Raises
        ------
        BadRequest, Unauthorized, Forbidden, RateLimited, ServerError, TransportError, AuthError
        """
        rid = await self._call("POST", endpoint(self.config), body, None, True)
        logger.info("created async request %s", rid)
        return rid

    async def status(self, request_id: str) -> bool:
        """True while ``request_id`` runs; False once it answers 404 (finished or unknown)."""
        return await self._call("GET", endpoint(self.config, request_id), None, request_id, False)

    async def check_credentials(self) -> None:
        """Obtain a token now (raises :class:`~xasync.errors.AuthError` on bad credentials)."""
        await asyncio.to_thread(_check_sync, self.config, self.auth)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Api(_Base):
    """The blocking facade of :class:`AsyncApi`: same methods, over :class:`httpx.Client`.

    Thread-safe: many threads may share one instance (and its connection pool and token).
    """

    def __init__(
        self,
        config: Config,
        *,
        auth: ClientCredentialsAuth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config, auth)
        self._http = httpx.Client(transport=transport, **self._client_kwargs())

    def _call(self, method: str, url: str, body: dict | None, rid: str | None, create: bool) -> Any:
        op = f"{method} {httpx.URL(url).path}"
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._http.request(method, url, json=body)
                _log(method, url, response, started, rid)
                if create:
                    return parse_create(response, self.auth.redact)
                assert rid is not None
                return parse_status(response, rid, self.auth.redact)
            except httpx.TransportError as exc:
                error: XasyncError = transport_error(exc, method, url)
            except XasyncError as exc:
                error = exc
            delay = self._give_up(error, op, attempt, create)
            if delay is None:
                raise error
            attempt += 1
            time.sleep(delay)

    def create(self, body: dict) -> str:
        """Submit one async request; return its id (see :meth:`AsyncApi.create`)."""
        rid = self._call("POST", endpoint(self.config), body, None, True)
        logger.info("created async request %s", rid)
        return rid

    def status(self, request_id: str) -> bool:
        """True while ``request_id`` runs; False once it answers 404 (finished or unknown)."""
        return self._call("GET", endpoint(self.config, request_id), None, request_id, False)

    def check_credentials(self) -> None:
        """Obtain a token now (raises :class:`~xasync.errors.AuthError` on bad credentials)."""
        try:
            self.auth.get_token(self._http)
        except httpx.TransportError as exc:
            raise transport_error(exc, "POST", self.auth.token_url) from None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_sync(config: Config, auth: ClientCredentialsAuth) -> None:
    with httpx.Client(timeout=httpx.Timeout(config.timeout), headers=default_headers()) as http:
        try:
            auth.get_token(http)
        except httpx.TransportError as exc:
            raise transport_error(exc, "POST", auth.token_url) from None
