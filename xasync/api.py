"""The thin HTTP layer over the Async API: create a request, ask its status.

:class:`AsyncApi` (over an :class:`httpx.AsyncClient`) holds the only implementation: one retry
loop, one token fetch (:meth:`xasync.auth.ClientCredentialsAuth.token`). :class:`Api`, the
blocking facade, runs that same code on a private event loop in a daemon thread (shared by every
``Api`` of the process), so a blocking call and an awaited one behave identically.

Retry policy
------------
Waits come from :class:`xasync.backoff.Backoff` (full jitter, capped, at least ``Retry-After``),
at most ``config.max_retries`` retries.

* ``status`` is idempotent: 5xx, 429, transport errors and passing faults of the token endpoint
  are retried.
* ``create`` buys something, so it is retried only when the request certainly never reached the
  service: connection refused or connect timeout, or a passing fault of the token endpoint (the
  create was then never sent). Everything else is raised for the caller to decide after looking
  at the delivery prefix: :class:`~xasync.errors.ServerError`, :class:`~xasync.errors.RateLimited`,
  or :class:`~xasync.errors.TransportError` with ``maybe_sent=True``.
* Wrong credentials (:class:`~xasync.errors.AuthError`) and 4xx answers are never retried. A 401
  of the API (a token it no longer accepts) refreshes the token and repeats the call once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx

from xasync._contract import STATUS_RUNNING
from xasync.auth import ClientCredentialsAuth
from xasync.backoff import Backoff
from xasync.config import Config
from xasync.errors import ApiError, RateLimited, ServerError, TransportError, XasyncError
from xasync.http_errors import error_from_response, json_body, transport_error

logger = logging.getLogger(__name__)

__all__ = ["Api", "AsyncApi", "parse_create", "parse_status", "retryable"]

T = TypeVar("T")


# -- pure pieces ---------------------------------------------------------------------------------
def endpoint(config: Config, request_id: str | None = None) -> str:
    """The create URL, or the status URL of ``request_id``."""
    url = config.base_url + config.api_path
    return url if request_id is None else f"{url}/{request_id}"


def default_headers() -> dict[str, str]:
    """Headers of every call (``Content-Type`` is set per body; the token per call)."""
    import xasync  # at call time: xasync/__init__.py imports this module

    return {"Accept": "application/json", "User-Agent": f"xasync/{xasync.__version__}"}


def parse_create(response: httpx.Response, redact: Callable[[str], str] | None = None) -> str:
    """The request id of a create answer; raise the typed error of a failed one."""
    if response.status_code != 200:
        raise error_from_response(response, redact=redact)
    payload = json_body(response)
    if not isinstance(payload, dict) or not payload.get("id"):
        # Accepted or not? The caller must check the delivery prefix, as for a lost answer.
        raise ApiError("create answered 200 without a request id", status_code=200)
    return str(payload["id"])


def parse_status(
    response: httpx.Response, request_id: str, redact: Callable[[str], str] | None = None
) -> bool:
    """True while the request runs (200), False once it is gone (404: finished or unknown)."""
    if response.status_code == 404:
        return False
    if response.status_code != 200:
        raise error_from_response(response, request_id=request_id, redact=redact)
    payload = json_body(response)
    status = payload.get("status") if isinstance(payload, dict) else None
    if status not in (None, STATUS_RUNNING):
        logger.warning("request %s: unexpected status %r, taken as running", request_id, status)
    return True


def retryable(error: XasyncError, *, create: bool, sent: bool = True) -> bool:
    """Whether a call that failed with ``error`` may be repeated.

    ``sent=False`` means the failure came before the call left this host (the token fetch).
    """
    transient = isinstance(error, (ServerError, RateLimited, TransportError))
    if not sent or not create:
        return transient
    return isinstance(error, TransportError) and not error.maybe_sent


class _NotSent(Exception):
    """Internal: ``error`` happened before the API call was sent (fetching the token)."""

    def __init__(self, error: XasyncError) -> None:
        super().__init__(str(error))
        self.error = error


# -- the implementation --------------------------------------------------------------------------
class AsyncApi:
    """The Async API over :class:`httpx.AsyncClient`, for use inside one event loop.

    Parameters
    ----------
    config : Config
        Endpoints, credentials, timeout and retry settings.
    auth : ClientCredentialsAuth, optional
        Share one (and so its token cache) between several API objects.
    transport : httpx.AsyncBaseTransport, optional
        A custom transport (tests).
    backoff : Backoff, optional
        The waits between retries (default: from ``config.backoff_base``/``backoff_max``).
    """

    def __init__(
        self,
        config: Config,
        *,
        auth: ClientCredentialsAuth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if auth is None:
            config.require_credentials()
            assert config.client_id is not None and config.client_secret is not None
            auth = ClientCredentialsAuth(config.token_url, config.client_id, config.client_secret)
        self.config = config
        self.auth = auth
        self.backoff = backoff if backoff is not None else Backoff.from_config(config)
        self._http = httpx.AsyncClient(
            transport=transport,
            headers=default_headers(),
            timeout=httpx.Timeout(config.timeout),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.base_url}{self.config.api_path})"

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} holds credentials and is not picklable")

    async def create(self, body: dict) -> str:
        """Submit one async request; return its id. Never retried once it may have been sent.

        Raises
        ------
        BadRequest, Unauthorized, Forbidden, RateLimited, ServerError, TransportError, AuthError
        """
        url = endpoint(self.config)
        rid = await self._retrying(
            f"POST {httpx.URL(url).path}",
            lambda: self._exchange("POST", url, body, lambda r: parse_create(r, self.auth.redact)),
            create=True,
        )
        logger.info("created async request %s", rid)
        return rid

    async def status(self, request_id: str) -> bool:
        """True while ``request_id`` runs; False once it answers 404 (finished or unknown)."""
        url = endpoint(self.config, request_id)
        return await self._retrying(
            f"GET {httpx.URL(url).path}",
            lambda: self._exchange(
                "GET", url, None, lambda r: parse_status(r, request_id, self.auth.redact)
            ),
            create=False,
        )

    async def check_credentials(self) -> None:
        """Obtain a token now (passing faults of the token endpoint are retried).

        Raises
        ------
        AuthError
            Wrong credentials.
        TransportError, RateLimited, ServerError
            The token endpoint stayed unreachable or faulty through every retry.
        """
        await self._retrying(f"POST {self.auth.token_url}", self._token, create=False)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------------
    async def _token(self) -> str:
        try:
            return await self.auth.token(self._http)
        except XasyncError as exc:
            raise _NotSent(exc) from None

    async def _exchange(
        self, method: str, url: str, body: dict | None, parse: Callable[[httpx.Response], T]
    ) -> T:
        """One authorised call, parsed; a 401 refreshes the token and repeats the call once."""
        for repeat in (False, True):
            token = await self._token()
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method, url, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError as exc:
                raise transport_error(exc, method, url) from None
            code = response.status_code
            level = (
                logging.INFO if code >= 400 and (method, code) != ("GET", 404) else logging.DEBUG
            )
            logger.log(level, "%s %s -> %s", method, httpx.URL(url).path, code)
            logger.debug("%s took %.3f s", url, time.monotonic() - started)
            if response.status_code == 401 and not repeat:
                logger.info("HTTP 401: refreshing the OAuth2 token and repeating the call once")
                self.auth.invalidate(token)
                continue
            return parse(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _retrying(self, op: str, once: Callable[[], Awaitable[T]], *, create: bool) -> T:
        """``await once()``, retried by the module's policy with :attr:`backoff` waits."""
        attempt = 0
        while True:
            sent = True
            try:
                return await once()
            except _NotSent as exc:
                error, sent = exc.error, False
            except XasyncError as exc:
                error = exc
            if attempt >= self.config.max_retries or not retryable(error, create=create, sent=sent):
                if attempt:
                    logger.warning("%s failed after %d retries: %s", op, attempt, error)
                raise error
            delay = self.backoff.delay(attempt, getattr(error, "retry_after", None))
            logger.info("%s: %s; retry %d in %.2f s", op, type(error).__name__, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)


# -- the blocking facade -------------------------------------------------------------------------
class _LoopThread:
    """An event loop running forever in a daemon thread: where blocking :class:`Api` calls run."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="xasync-api", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        """False in a forked child (the thread did not survive the fork) or once it died."""
        return self.pid == os.getpid() and self.thread.is_alive()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it ends (cancel it if the wait is broken)."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("the blocking xasync Api was called on its own loop: use AsyncApi")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # a KeyboardInterrupt must not leave the call running
            raise


_LOOP_LOCK = threading.Lock()
_LOOP: _LoopThread | None = None


def _facade_loop() -> _LoopThread:
    """The process's facade loop, started on first use (and again in a forked child)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or not _LOOP.alive():
            _LOOP = _LoopThread()
        return _LOOP


class Api:
    """The blocking facade of :class:`AsyncApi`: the same code, run on a private event loop.

    Thread-safe: many threads may share one instance (and its connection pool and token). Not
    to be called from a coroutine running on that private loop (use :class:`AsyncApi`).
    Parameters are those of :class:`AsyncApi`.
    """

    def __init__(
        self,
        config: Config,
        *,
        auth: ClientCredentialsAuth | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._make = lambda: AsyncApi(config, auth=auth, transport=transport, backoff=backoff)
        self._async = self._make()
        auth = self._async.auth  # a fork rebuilds the AsyncApi with the same token cache
        self._loop = _facade_loop()
        self._closed = False

    @property
    def config(self) -> Config:
        """The configuration."""
        return self._async.config

    @property
    def auth(self) -> ClientCredentialsAuth:
        """The token cache (shared with every API built on it)."""
        return self._async.auth

    def __repr__(self) -> str:
        return f"Api({self.config.base_url}{self.config.api_path})"

    def __reduce__(self) -> Any:
        raise TypeError("Api holds credentials and is not picklable")

    def _run(self, call: Callable[[AsyncApi], Coroutine[Any, Any, T]]) -> T:
        if self._closed:
            raise RuntimeError("this Api is closed")
        if not self._loop.alive():  # a forked child: the parent's loop and pool are unusable
            self._loop, self._async = _facade_loop(), self._make()
        return self._loop.run(call(self._async))

    def create(self, body: dict) -> str:
        """Submit one async request; return its id (see :meth:`AsyncApi.create`)."""
        return self._run(lambda api: api.create(body))

    def status(self, request_id: str) -> bool:
        """True while ``request_id`` runs; False once it answers 404 (finished or unknown)."""
        return self._run(lambda api: api.status(request_id))

    def check_credentials(self) -> None:
        """Obtain a token now (see :meth:`AsyncApi.check_credentials`)."""
        self._run(lambda api: api.check_credentials())

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if not self._closed:
            if self._loop.alive():
                self._loop.run(self._async.aclose())
            self._closed = True

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
