"""OAuth2 client-credentials tokens: one cached token per account, one way to fetch it.

:meth:`ClientCredentialsAuth.token` is the only token fetch of the library. It runs in an event
loop, over the caller's pooled :class:`httpx.AsyncClient`; the blocking :class:`xasync.api.Api`
reaches it through the same loop-based code as the :class:`~xasync.api.AsyncApi`. The token is
cached per :class:`ClientCredentialsAuth` and shared by every API object built on it; it is
refreshed shortly before it expires, and when the API answers 401 (:meth:`invalidate`).

What a failed fetch raises
--------------------------
* 400/401 (and any other 4xx but 429), or a 200 without a usable token:
  :class:`~xasync.errors.AuthError`: the credentials are wrong, retrying cannot help.
* 429: :class:`~xasync.errors.RateLimited`; 5xx: :class:`~xasync.errors.ServerError`; a
  connection failure: :class:`~xasync.errors.TransportError` with ``maybe_sent=False``. These are
  passing faults; nothing was sent to the API, so the caller may retry or look at S3.

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
from typing import Any

import httpx

from xasync.errors import AuthError, ConfigError, RateLimited, ServerError, TransportError
from xasync.http_errors import error_from_response, json_body, transport_error

logger = logging.getLogger(__name__)

__all__ = ["ClientCredentialsAuth"]

#: Refresh when less than min(MAX_MARGIN, MARGIN_FRACTION * lifetime) seconds remain.
MAX_MARGIN = 120.0
MARGIN_FRACTION = 0.25
#: Lifetime assumed when the token endpoint states none and the token carries no ``exp``.
FALLBACK_LIFETIME = 300.0

_MASK = "***"


class ClientCredentialsAuth:
    """OAuth2 client-credentials grant with a cached token shared by threads and event loops.

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
    One fetch at a time per event loop (an :class:`asyncio.Lock` per loop; a loop never blocks
    on a thread lock); the cache itself is guarded by a thread lock held only briefly.
    """

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
        self._refresh_at = 0.0  # time.monotonic() deadline
        self._state_lock = threading.Lock()
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
    def cached(self) -> str | None:
        """The cached token unless it is due for refresh (do not log it)."""
        with self._state_lock:
            if self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            return None

    def invalidate(self, rejected: str) -> None:
        """Forget ``rejected`` (a 401 answered it) unless a newer token already replaced it."""
        with self._state_lock:
            if self._token == rejected:
                self._token = None
                self._refresh_at = 0.0

    # -- the one fetch path ---------------------------------------------------------------------
    async def token(self, http: httpx.AsyncClient) -> str:
        """A valid access token, fetched with ``http`` when the cache has none.

        Raises
        ------
        AuthError
            The token endpoint refused the credentials.
        RateLimited, ServerError, TransportError
            A passing fault of the token endpoint (see the module docstring).
        """
        token = self.cached()
        if token is not None:
            return token
        async with self._loop_lock():
            token = self.cached()  # another task may have fetched it meanwhile
            if token is not None:
                return token
            started = time.monotonic()
            try:
                response = await http.post(self.token_url, data=self._form())
            except httpx.TransportError as exc:
                error = transport_error(exc, "POST", self.token_url, sent=False)
                raise TransportError(f"token endpoint: {error}", maybe_sent=False) from None
            return self._store(response, started)

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._state_lock:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        if self._scope:
            form["scope"] = self._scope
        return form

    def _store(self, response: httpx.Response, started: float) -> str:
        """Parse a token response, cache the token and return it; raise the typed error."""
        status = response.status_code
        payload = json_body(response)
        if status == 429 or status >= 500:
            error = error_from_response(
                response, redact=self.redact, prefix=f"token endpoint {self.token_url}: "
            )
            assert isinstance(error, (RateLimited, ServerError))
            logger.warning("token endpoint answered HTTP %s (a passing fault)", status)
            raise error
        if status != 200 or not isinstance(payload, dict) or not payload.get("access_token"):
            detail = _oauth_error(payload) or response.reason_phrase or "no error description"
            logger.warning("token endpoint refused the credentials: HTTP %s", status)
            raise AuthError(
                f"could not obtain an OAuth2 token for client {self.client_id!r} from "
                f"{self.token_url}: HTTP {status}: {self.redact(detail)}"
            )
        token = str(payload["access_token"])
        lifetime = _lifetime(payload, token)
        margin = min(MAX_MARGIN, MARGIN_FRACTION * lifetime)
        with self._state_lock:
            self._token = token
            self._refresh_at = started + lifetime - margin
            self.token_fetches += 1
        logger.info(
            "obtained an OAuth2 token for client %r (valid %.0f s, refresh %.1f s early)",
            self.client_id,
            lifetime,
            margin,
        )
        return token


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
