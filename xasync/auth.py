"""OAuth2 client-credentials authentication as an :class:`httpx.Auth`.

The token request is yielded from the auth flow, so httpx sends it with the same (pooled)
client as the API call it precedes. One token is cached per :class:`ClientCredentialsAuth` and
shared by every client that uses it, sync or async. It is refreshed shortly before it expires,
and once more when the API answers 401 (the call is then repeated once).

Neither the client secret nor the access token is ever logged, shown by ``repr`` or put into an
exception message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from xasync.errors import AuthError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["ClientCredentialsAuth", "TokenEndpointUnavailable"]

#: Refresh when less than min(MAX_MARGIN, MARGIN_FRACTION * lifetime) seconds remain.
MAX_MARGIN = 120.0
MARGIN_FRACTION = 0.25
#: Lifetime assumed when the token endpoint states none and the token carries no ``exp``.
FALLBACK_LIFETIME = 300.0

_MASK = "***"


class TokenEndpointUnavailable(AuthError):
    """The token endpoint answered 429 or 5xx: a passing fault, worth retrying later."""


class ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client-credentials grant with a cached, shared, thread- and task-safe token.

    Parameters
    ----------
    token_url : str
        The token endpoint.
    client_id, client_secret : str
        The OAuth2 client. Missing ones raise :class:`~xasync.errors.ConfigError` at once.
    scope : str, optional
        OAuth2 scope (Sentinel Hub accepts none).

    Notes
    -----
    Safe to share between many threads (one token fetch at a time, under a lock) and between
    event loops (one fetch at a time per loop; a loop never blocks on a thread lock).
    """

    requires_response_body = True

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, *, scope: str | None = None
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigError(
                "OAuth2 client credentials are missing: set SH_CLIENT_ID and SH_CLIENT_SECRET "
                "(or pass client_id=/client_secret=)"
            )
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._token: str | None = None
        self._expires_at = 0.0  # time.monotonic() deadline
        self._refresh_at = 0.0
        self._state_lock = threading.Lock()  # guards the cached token (held only briefly)
        self._fetch_lock = threading.Lock()  # one sync fetch at a time (held across the yield)
        self._loop_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()
        self.token_fetches = 0

    # -- presentation ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        state = "cached" if self._token else "none"
        return (
            f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"client_secret={_MASK!r}, token={state})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "ClientCredentialsAuth holds OAuth2 credentials and is not picklable: it stays in "
            "the submitting process."
        )

    def redact(self, text: str) -> str:
        """``text`` with the client secret and the current access token replaced by ``***``."""
        for secret in (self._secret, self._token):
            if secret and secret in text:
                text = text.replace(secret, _MASK)
        return text

    # -- the cache ------------------------------------------------------------------------------
    def _cached(self) -> str | None:
        """The cached token unless it is due for refresh."""
        with self._state_lock:
            if self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            return None

    def _invalidate(self, rejected: str) -> None:
        """Forget ``rejected`` (a 401 answered it) unless a newer token already replaced it."""
        with self._state_lock:
            if self._token == rejected:
                self._token = None
                self._refresh_at = 0.0

    def _token_request(self) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        if self._scope:
            form["scope"] = self._scope
        return httpx.Request(
            "POST", self.token_url, data=form, headers={"Accept": "application/json"}
        )

    def _store(self, response: httpx.Response, started: float) -> str:
        """Parse a token response, cache the token, return it; raise AuthError on failure."""
        status = response.status_code
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            payload = None
        if status != 200 or not isinstance(payload, dict) or not payload.get("access_token"):
            detail = _oauth_error(payload) or response.reason_phrase or "no error description"
            detail = self.redact(detail)
            cls = TokenEndpointUnavailable if status == 429 or status >= 500 else AuthError
            logger.warning("token endpoint answered HTTP %s: %s", status, detail)
            raise cls(
                f"could not obtain an OAuth2 token for client {self.client_id!r} from "
                f"{self.token_url}: HTTP {status}: {detail}"
            )
        token = str(payload["access_token"])
        lifetime = _lifetime(payload, token)
        margin = min(MAX_MARGIN, MARGIN_FRACTION * lifetime)
        with self._state_lock:
            self._token = token
            self._expires_at = started + lifetime
            self._refresh_at = started + lifetime - margin
            self.token_fetches += 1
        logger.info(
            "obtained an OAuth2 token for client %r (valid %.0f s, refresh %.1f s early)",
            self.client_id,
            lifetime,
            margin,
        )
        return token

    # -- sync flow --------------------------------------------------------------------------------
    def _sync_token(self) -> Generator[httpx.Request, httpx.Response, str]:
        token = self._cached()
        if token is not None:
            return token
        with self._fetch_lock:
            token = self._cached()  # another thread may have fetched it meanwhile
            if token is not None:
                return token
            started = time.monotonic()
            response = yield self._token_request()
            response.read()
            return self._store(response, started)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the bearer token; on a 401 refresh it once and repeat the request."""
        token = yield from self._sync_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            logger.info("HTTP 401: refreshing the OAuth2 token and repeating the call once")
            self._invalidate(token)
            token = yield from self._sync_token()
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def get_token(self, client: httpx.Client) -> str:
        """A valid access token, fetched with ``client`` when the cache has none.

        Used to check credentials before anything is submitted. Do not log the result.
        """
        flow = self._sync_token()
        try:
            request = next(flow)
        except StopIteration as stop:
            return stop.value
        response = client.send(request, auth=None)
        try:
            flow.send(response)
        except StopIteration as stop:
            return stop.value
        finally:
            response.close()
        raise AssertionError("unreachable: the token flow sends one request")  # pragma: no cover

    # -- async flow -------------------------------------------------------------------------------
    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._state_lock:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The async twin of :meth:`sync_auth_flow` (never blocks the event loop on a lock)."""
        token = self._cached()
        if token is None:
            async with self._loop_lock():
                token = self._cached()
                if token is None:
                    started = time.monotonic()
                    response = yield self._token_request()
                    await response.aread()
                    token = self._store(response, started)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            logger.info("HTTP 401: refreshing the OAuth2 token and repeating the call once")
            self._invalidate(token)
            async with self._loop_lock():
                fresh = self._cached()
                if fresh is None:
                    started = time.monotonic()
                    token_response = yield self._token_request()
                    await token_response.aread()
                    fresh = self._store(token_response, started)
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request


def _oauth_error(payload: Any) -> str:
    """``error: error_description`` of an OAuth2 error body (or a wrapped API error)."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if isinstance(error, dict):  # a RestErrorWrapper-style body
        return str(error.get("message") or error.get("reason") or "")
    parts = [str(p) for p in (error, payload.get("error_description")) if p]
    return ": ".join(parts)


def _lifetime(payload: dict, token: str) -> float:
    """Seconds the token lives: ``expires_in``, else the JWT ``exp`` claim, else a fallback."""
    try:
        value = float(payload["expires_in"])
        if value > 0:
            return value
    except (KeyError, TypeError, ValueError):
        pass
    try:
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        left = float(claims["exp"]) - time.time()
        if left > 0:
            return left
    except (IndexError, KeyError, TypeError, ValueError):
        pass
    return FALLBACK_LIFETIME
