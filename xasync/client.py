"""``xasync.Client``: one Async API account, with its token and connection pools.

The client stays in the process that submits requests: it refuses to be pickled, so the OAuth2
secret can never travel inside a dask graph (workers only read the delivered files from S3).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from xasync.api import Api, AsyncApi
from xasync.auth import ClientCredentialsAuth
from xasync.config import Config

logger = logging.getLogger(__name__)

__all__ = ["Client"]


class Client:
    """An Async API account: endpoints, credentials, and the HTTP layer built on them.

    Every argument is optional; what is not given is resolved by :meth:`Config.resolve`
    (environment ``SH_CLIENT_ID``/``SH_CLIENT_SECRET``/``SH_BASE_URL``/``SH_TOKEN_URL``, then
    the sentinelhub-py config file, then the Sentinel Hub defaults).

    Parameters
    ----------
    base_url, token_url : str, optional
        The deployment and its OAuth2 token endpoint (see :data:`xasync.config.CDSE`).
    client_id, client_secret : str, optional
        OAuth2 client credentials.
    concurrency : int, optional
        The account's limit of concurrently running async requests.
    timeout : float, optional
        Seconds per HTTP exchange (default 30).
    api_path : str, optional
        ``/api/v1/async/process`` (default) or ``/async/v1/process``.
    config : Config, optional
        A complete configuration; the other arguments, when given, override its fields.
    profile : str, optional
        The sentinelhub-py profile to read.

    Examples
    --------
    >>> client = Client(client_id="...", client_secret="...")  # doctest: +SKIP
    >>> request_id = client.api.create(body)                    # doctest: +SKIP
    >>> client.api.status(request_id)                           # doctest: +SKIP
    True
    """

    def __init__(
        self,
        base_url: str | None = None,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        concurrency: int | None = None,
        timeout: float | None = None,
        api_path: str | None = None,
        config: Config | None = None,
        profile: str | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "base_url": base_url,
            "token_url": token_url,
            "client_id": client_id,
            "client_secret": client_secret,
            "concurrency": concurrency,
            "timeout": timeout,
            "api_path": api_path,
        }
        if config is not None:
            self._config = config.with_overrides(**given)
        else:
            self._config = Config.resolve(profile=profile, **given)
        self._lock = threading.Lock()
        self._auth: ClientCredentialsAuth | None = None
        self._api: Api | None = None

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_env(cls, profile: str | None = None) -> Client:
        """A client from the environment and the sentinelhub-py config file only."""
        return cls(profile=profile)

    @classmethod
    def from_emulator(cls, emu: Any, **overrides: Any) -> Client:
        """A client for a running :class:`xasync.emulator.Emulator` (or anything shaped like one).

        Reads ``emu.base_url``, ``token_url``, ``client_id``, ``client_secret`` and, when
        present, ``concurrency_limit``. ``overrides`` are further :class:`Config` fields.
        """
        values = {
            "base_url": emu.base_url,
            "token_url": emu.token_url,
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "concurrency": getattr(emu, "concurrency_limit", None),
        }
        values.update(overrides)
        return cls(config=Config(**values))

    # -- parts -----------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The resolved :class:`Config` (its repr masks the secret)."""
        return self._config

    @property
    def auth(self) -> ClientCredentialsAuth:
        """The OAuth2 auth shared by :attr:`api` and every :meth:`async_api` (one token cache).

        Raises :class:`~xasync.errors.ConfigError` when credentials are missing.
        """
        with self._lock:
            if self._auth is None:
                cfg = self._config
                cfg.require_credentials()
                assert cfg.client_id is not None and cfg.client_secret is not None
                self._auth = ClientCredentialsAuth(cfg.token_url, cfg.client_id, cfg.client_secret)
            return self._auth

    @property
    def api(self) -> Api:
        """The blocking :class:`~xasync.api.Api`, created on first use and shared."""
        auth = self.auth
        with self._lock:
            if self._api is None:
                self._api = Api(self._config, auth=auth)
            return self._api

    def async_api(self) -> AsyncApi:
        """A new :class:`~xasync.api.AsyncApi` for the calling event loop (close it with
        ``aclose``); it shares this client's token."""
        return AsyncApi(self._config, auth=self.auth)

    def check_credentials(self) -> None:
        """Fetch a token now: wrong credentials fail before anything is submitted.

        Raises
        ------
        ConfigError
            No client id or secret was configured.
        AuthError
            The token endpoint refused the credentials.
        TransportError, RateLimited, ServerError
            The token endpoint stayed unreachable or faulty through every retry (a passing
            fault: nothing was submitted).
        """
        self.api.check_credentials()

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the blocking API's connection pool (async ones are closed by their owner)."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self._config
        return (
            f"Client(base_url={cfg.base_url!r}, client_id={cfg.client_id!r}, "
            f"client_secret={'***' if cfg.client_secret else None!r}, api_path={cfg.api_path!r}, "
            f"concurrency={cfg.concurrency!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "xasync.Client is not picklable: it holds OAuth2 credentials and stays in the "
            "submitting process. Dask workers read the delivered files from S3 and never need it."
        )
