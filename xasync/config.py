"""Endpoints and credentials of an Async API deployment.

A :class:`Config` is a frozen value: where the API and its OAuth2 token endpoint live, the
client credentials, the deployment whose rules apply (:mod:`xasync.deployments`), and the few
knobs of the HTTP layer (timeout, retries, back-off). Its
``repr`` never shows the client secret, and it refuses to be pickled so that the secret cannot
travel into a dask graph by accident.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from xasync._contract import API_PATH_LEGACY, API_PATHS
from xasync.deployments import CDSE as _CDSE
from xasync.deployments import (
    ENV_DEPLOYMENT,
    Deployment,
    deployment,
    deployment_for_url,
)
from xasync.deployments import SENTINEL_HUB_EU as _SH_EU
from xasync.deployments import SENTINEL_HUB_US_WEST as _SH_US_WEST
from xasync.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "CDSE",
    "SENTINEL_HUB",
    "SENTINEL_HUB_US_WEST",
    "Config",
    "Deployment",
    "default_config_file",
    "deployment",
]

#: Environment variables read by :meth:`Config.resolve`.
ENV_CLIENT_ID = "SH_CLIENT_ID"
ENV_CLIENT_SECRET = "SH_CLIENT_SECRET"
ENV_BASE_URL = "SH_BASE_URL"
ENV_TOKEN_URL = "SH_TOKEN_URL"
ENV_PROFILE = "SH_PROFILE"
ENV_CONCURRENCY = "XASYNC_CONCURRENCY"

#: The sentinelhub-py profile used when none is named (same default as sentinelhub-py).
DEFAULT_PROFILE = "default-profile"

#: sentinelhub-py config.toml key -> Config field.
_FILE_KEYS = {
    "sh_client_id": "client_id",
    "sh_client_secret": "client_secret",
    "sh_base_url": "base_url",
    "sh_token_url": "token_url",
}


def default_config_file() -> Path:
    """Where sentinelhub-py keeps its ``config.toml`` (``$XDG_CONFIG_HOME`` or ``~/.config``)."""
    folder = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(folder) / "sentinelhub" / "config.toml"


@dataclass(frozen=True)
class Config:
    """Endpoints, credentials and HTTP knobs of one Async API account.

    Parameters
    ----------
    base_url : str
        The deployment, e.g. ``https://services.sentinel-hub.com`` (no trailing slash needed).
    token_url : str
        The OAuth2 token endpoint (client-credentials grant).
    client_id, client_secret : str or None
        OAuth2 client credentials. The secret is never shown by ``repr``/``str``.
    api_path : str
        Path of the Async endpoints: ``/api/v1/async/process`` (default; also CDSE) or the
        Planet-era ``/async/v1/process``.
    timeout : float
        Seconds allowed for connecting and for each read/write of one HTTP exchange.
    concurrency : int or None
        The account's limit of concurrently running async requests, when known.
    max_retries : int
        How many times a status call is retried after a 5xx, 429 or transport error.
    backoff_base, backoff_max : float
        Exponential back-off with full jitter: the n-th retry waits a random time in
        ``[0, min(backoff_max, backoff_base * 2**n)]`` seconds.
    deployment : str or None
        Name of the :class:`~xasync.deployments.Deployment` whose delivery rules apply
        (``"sentinel-hub-eu"``, ``"sentinel-hub-us-west"``, ``"cdse"`` or an alias). When
        ``None`` it is inferred from ``base_url`` (``None`` for any other URL, e.g. the emulator).
    """

    base_url: str
    token_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_path: str = API_PATH_LEGACY
    timeout: float = 30.0
    concurrency: int | None = None
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    deployment: str | None = None

    def __post_init__(self) -> None:
        for name in ("base_url", "token_url"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise ConfigError(f"Config.{name} must be an http(s) URL, got {value!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if self.api_path not in API_PATHS:
            raise ConfigError(f"Config.api_path must be one of {API_PATHS}, got {self.api_path!r}")
        for name in ("client_id", "client_secret"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"Config.{name} must be a string")
            if value == "":
                object.__setattr__(self, name, None)
        _check_number("timeout", self.timeout, minimum=0.0, strict=True)
        _check_number("backoff_base", self.backoff_base, minimum=0.0)
        _check_number("backoff_max", self.backoff_max, minimum=0.0)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigError(f"Config.max_retries must be an int, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ConfigError(f"Config.max_retries must be >= 0, got {self.max_retries!r}")
        c = self.concurrency
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ConfigError(f"Config.concurrency must be a positive int or None, got {c!r}")
        if self.deployment is not None:
            object.__setattr__(self, "deployment", deployment(self.deployment).name)
        else:
            found = deployment_for_url(self.base_url)
            object.__setattr__(self, "deployment", found.name if found else None)

    # -- presentation: the secret never shows -------------------------------------------------
    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "client_secret":
                parts.append(f"client_secret={'***' if value else None!r}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"Config({', '.join(parts)})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "xasync.Config holds OAuth2 credentials and is not picklable: it stays in the "
            "submitting process (dask workers only need S3 read access)."
        )

    # -- derived ------------------------------------------------------------------------------
    @property
    def has_credentials(self) -> bool:
        """True when both the client id and the client secret are set."""
        return bool(self.client_id) and bool(self.client_secret)

    @property
    def preset(self) -> Deployment | None:
        """The :class:`~xasync.deployments.Deployment` whose rules apply, if any."""
        return deployment(self.deployment) if self.deployment else None

    def check_delivery(self, delivery: str, *, iam_role_arn: str | None = None) -> None:
        """Refuse, before paying, a delivery the deployment cannot write.

        ``gs://`` and ``iam_role_arn`` raise :class:`~xasync.errors.ValidationError` on CDSE
        (see :meth:`Deployment.check_delivery`); any deployment refuses a URL that is neither
        ``s3://`` nor ``gs://``. Without a known deployment (e.g. the emulator) only the scheme
        is checked.
        """
        preset = self.preset
        if preset is None:
            preset = Deployment(
                name="custom", title=self.base_url, base_url=self.base_url, token_url=self.token_url
            )
        preset.check_delivery(delivery, iam_role_arn=iam_role_arn)

    def storage_options(
        self, key: str | None = None, secret: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """``storage_options`` for the deployment's buckets (CDSE: the CloudFerro endpoint).

        See :meth:`Deployment.storage_options`; without a known deployment only ``key``,
        ``secret`` and ``extra`` are returned.
        """
        preset = self.preset or _SH_EU
        return preset.storage_options(key, secret, **extra)

    def require_credentials(self) -> None:
        """Raise :class:`~xasync.errors.ConfigError` unless id and secret are both set.

        The message names the environment variables and the sentinelhub-py file to use.
        """
        if self.has_credentials:
            return
        missing = [
            env
            for env, value in (
                (ENV_CLIENT_ID, self.client_id),
                (ENV_CLIENT_SECRET, self.client_secret),
            )
            if not value
        ]
        raise ConfigError(
            "OAuth2 client credentials are missing ("
            + " and ".join(missing)
            + " not set): pass client_id=/client_secret= to xasync.Client, set "
            f"{ENV_CLIENT_ID} and {ENV_CLIENT_SECRET} in the environment, or add sh_client_id/"
            f"sh_client_secret to a profile of {default_config_file()} (sentinelhub-py's file)"
        )

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with the non-``None`` ``changes`` applied (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown Config fields: {sorted(unknown)}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- resolution ---------------------------------------------------------------------------
    @classmethod
    def resolve(
        cls,
        *,
        profile: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **explicit: Any,
    ) -> Config:
        """Build a Config from arguments, the environment, sentinelhub-py's file and defaults.

        Each field is taken from the first source that sets it:

        ============  ========================  ==========================  =================
        field         environment               sentinelhub-py config.toml  default
        ============  ========================  ==========================  =================
        client_id     ``SH_CLIENT_ID``          ``sh_client_id``            None
        client_secret ``SH_CLIENT_SECRET``      ``sh_client_secret``        None
        base_url      ``SH_BASE_URL``           ``sh_base_url``             Sentinel Hub
        token_url     ``SH_TOKEN_URL``          ``sh_token_url``            see below
        concurrency   ``XASYNC_CONCURRENCY``    --                          None
        deployment    ``SH_DEPLOYMENT``         --                          from base_url
        ============  ========================  ==========================  =================

        Explicit keyword arguments (any :class:`Config` field; ``None`` means "not given") come
        first of all. A deployment named by ``deployment=`` or ``SH_DEPLOYMENT`` (see
        :mod:`xasync.deployments`: ``"sentinel-hub-eu"``, ``"sentinel-hub-us-west"``,
        ``"cdse"``) sets ``base_url``, ``token_url`` and ``api_path`` over the environment and
        the file (only explicit arguments override it), and its delivery rules apply. The file
        is ``$XDG_CONFIG_HOME/sentinelhub/config.toml`` (else ``~/.config/...``, as
        sentinelhub-py 3.x), profile ``profile=`` > ``SH_PROFILE`` >
        ``"default-profile"``. When no source gives a token URL and the base URL is a known
        deployment (Sentinel Hub, CDSE), that deployment's token URL is used.

        Missing credentials are not an error here: they are reported (as
        :class:`~xasync.errors.ConfigError`) when a token is first needed.

        Parameters
        ----------
        profile : str, optional
            The sentinelhub-py profile to read. Naming a profile the file lacks is an error.
        config_file : path, optional
            Another file in sentinelhub-py's format.
        env : mapping, optional
            The environment to read (default ``os.environ``).
        **explicit
            Config fields.

        Returns
        -------
        Config
        """
        env = os.environ if env is None else env
        unknown = set(explicit) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown configuration arguments: {sorted(unknown)}")
        given = {k: v for k, v in explicit.items() if v is not None}
        named = given.pop("deployment", None) or env.get(ENV_DEPLOYMENT) or None
        preset = deployment(named) if named else None
        from_env = _env_values(env)
        from_file = _read_profile(config_file, profile if profile else env.get(ENV_PROFILE))
        layers = [("arguments", given)]
        if preset is not None:
            # a named deployment sets the endpoints: only explicit arguments override them
            for source, mapping in (("environment", from_env), ("file", from_file)):
                for k in _ENDPOINT_FIELDS & set(mapping):
                    if mapping.pop(k) != getattr(preset, k):
                        logger.info(
                            "deployment %r named: %s from the %s ignored", preset.name, k, source
                        )
            preset_values = {k: getattr(preset, k) for k in _ENDPOINT_FIELDS}
            layers.append(
                (f"deployment {preset.name}", {**preset_values, "deployment": preset.name})
            )
        layers += [("environment", from_env), ("file", from_file)]
        values: dict[str, Any] = {}
        sources = []
        for source, mapping in layers:
            for k, v in mapping.items():
                if k not in values:
                    values[k] = v
                    sources.append(f"{k}<-{source}")
        values.setdefault("base_url", SENTINEL_HUB.base_url)
        if "token_url" not in values:
            known = deployment_for_url(str(values["base_url"]))
            values["token_url"] = (known or _SH_EU).token_url
        logger.debug("resolved configuration: %s", ", ".join(sources) or "defaults")
        return cls(**values)


#: The Config fields a named deployment sets.
_ENDPOINT_FIELDS = frozenset({"base_url", "token_url", "api_path"})


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """The Config fields the environment sets (``SH_*``, ``XASYNC_CONCURRENCY``)."""
    values: dict[str, Any] = {}
    for var, name in (
        (ENV_CLIENT_ID, "client_id"),
        (ENV_CLIENT_SECRET, "client_secret"),
        (ENV_BASE_URL, "base_url"),
        (ENV_TOKEN_URL, "token_url"),
    ):
        if env.get(var):
            values[name] = env[var]
    if env.get(ENV_CONCURRENCY):
        raw = env[ENV_CONCURRENCY]
        try:
            values["concurrency"] = int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_CONCURRENCY} must be an integer, got {raw!r}") from None
    return values


def _check_number(name: str, value: Any, *, minimum: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        rel = ">" if strict else ">="
        raise ConfigError(f"Config.{name} must be a number {rel} {minimum}, got {value!r}")


def _read_profile(path: str | os.PathLike[str] | None, profile: str | None) -> dict[str, Any]:
    """The Config fields a sentinelhub-py profile sets ({} when the file does not exist)."""
    file = Path(path) if path is not None else default_config_file()
    if not file.is_file():
        if path is not None:
            raise ConfigError(f"configuration file {file} does not exist")
        return {}
    try:
        with file.open("rb") as fh:
            content = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the sentinelhub-py configuration {file}: {exc}") from None
    name = profile or DEFAULT_PROFILE
    section = content.get(name)
    if section is None:
        if profile:
            raise ConfigError(
                f"profile {profile!r} not found in {file} (profiles: {sorted(content)})"
            )
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"profile {name!r} of {file} is not a table")
    return {ours: section[key] for key, ours in _FILE_KEYS.items() if section.get(key)}


def _preset_config(preset: Deployment) -> Config:
    return Config(
        base_url=preset.base_url,
        token_url=preset.token_url,
        api_path=preset.api_path,
        deployment=preset.name,
    )


#: Sentinel Hub (Planet), EU deployment (Frankfurt): the default.
SENTINEL_HUB = _preset_config(_SH_EU)
#: Sentinel Hub (Planet), US West deployment (Oregon).
SENTINEL_HUB_US_WEST = _preset_config(_SH_US_WEST)
#: Copernicus Data Space Ecosystem: its Sentinel Hub API and identity service.
CDSE = _preset_config(_CDSE)
