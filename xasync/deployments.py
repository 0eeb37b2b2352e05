"""The places the Async API runs: Sentinel Hub EU, Sentinel Hub US West and CDSE.

A :class:`Deployment` is a frozen value naming a deployment's endpoints (base URL, OAuth2 token
URL, path style), the object storage its users deliver to, and what its delivery accepts
(``iamRoleARN``, ``gs://``). :meth:`xasync.Config.resolve` takes a deployment by name
(``deployment="cdse"`` or ``SH_DEPLOYMENT``); :meth:`Deployment.check_delivery` refuses what a
deployment cannot do before anything is paid for. Sources: ``shared/spec/async-api.md`` sections
1, 4 and 5.3; what is documented and what is assumed is listed in ``docs/guide/deployments.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from xasync._contract import API_PATH_LEGACY
from xasync.errors import ConfigError, ValidationError

logger = logging.getLogger(__name__)

__all__ = ["DEPLOYMENTS", "Deployment", "deployment", "deployment_for_url"]

#: Environment variable naming a deployment (read by :meth:`xasync.Config.resolve`).
ENV_DEPLOYMENT = "SH_DEPLOYMENT"

_SH_TOKEN_URL = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
_CDSE_TOKEN_URL = (
    "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
)


@dataclass(frozen=True)
class Deployment:
    """One deployment of the Async API and the rules of its delivery.

    Attributes
    ----------
    name : str
        Canonical name: ``"sentinel-hub-eu"``, ``"sentinel-hub-us-west"`` or ``"cdse"``.
    title : str
        Human-readable name.
    base_url, token_url : str
        API root and OAuth2 token endpoint (client-credentials grant).
    api_path : str
        Path of the create/status endpoints. Every preset uses ``/api/v1/async/process``: the
        path of the CDSE spec, of the Sentinel Hub examples and of sentinelhub-py (spec 1.2);
        Sentinel Hub also documents ``/async/v1/process`` (pass ``api_path=`` to use it).
    region : str or None
        Region of the deployment: a delivery bucket elsewhere pays 0.03 PU/MB more (spec 11).
    storage_endpoint : str or None
        S3 endpoint of the object storage the deployment's users deliver to, when it is not
        AWS (CDSE: CloudFerro). ``None``: AWS S3, found by s3fs/botocore as usual.
    supports_iam_role : bool
        Whether ``delivery.s3.iamRoleARN`` exists (not on CDSE: spec 5.3).
    supports_gcs : bool
        Whether ``delivery.gs`` (Google Cloud Storage) exists (not on CDSE: spec 5.3).
    aliases : tuple of str
        Other names accepted by :func:`deployment`.
    """

    name: str
    title: str
    base_url: str
    token_url: str
    api_path: str = API_PATH_LEGACY
    region: str | None = None
    storage_endpoint: str | None = None
    supports_iam_role: bool = True
    supports_gcs: bool = True
    aliases: tuple[str, ...] = field(default=(), repr=False)

    def storage_options(
        self, key: str | None = None, secret: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """``storage_options`` for reading (and delivering to) this deployment's buckets.

        Parameters
        ----------
        key, secret : str, optional
            S3 access key pair of the bucket (CDSE: an S3 key pair of your CDSE account).
            Without them s3fs uses its defaults (AWS environment, instance role).
        **extra
            Further ``s3fs.S3FileSystem`` arguments, merged over these.

        Returns
        -------
        dict
            For :func:`xasync.process` / ``gdf.xasync.process(storage_options=...)`` and for
            ``s3fs.S3FileSystem(**storage_options)``. On CDSE it points botocore at the
            CloudFerro endpoint.
        """
        options: dict[str, Any] = {}
        if key is not None or secret is not None:
            if not (key and secret):
                raise ConfigError("storage_options needs both key and secret, or neither")
            options.update(key=key, secret=secret)
        if self.storage_endpoint is not None:
            options["client_kwargs"] = {"endpoint_url": self.storage_endpoint}
        for name, value in extra.items():
            if name == "client_kwargs" and "client_kwargs" in options:
                options["client_kwargs"] = {**options["client_kwargs"], **value}
            else:
                options[name] = value
        return options

    def check_delivery(self, delivery: str, *, iam_role_arn: str | None = None) -> None:
        """Refuse a delivery this deployment cannot write, before anything is paid for.

        Parameters
        ----------
        delivery : str
            The delivery URL (``s3://...`` or ``gs://...``).
        iam_role_arn : str, optional
            The role the service would assume to write.

        Raises
        ------
        xasync.errors.ValidationError
            ``gs://`` or ``iam_role_arn`` on a deployment without them (CDSE), or a delivery
            URL that is neither ``s3://`` nor ``gs://``.
        """
        scheme = delivery.split("://", 1)[0].lower() if "://" in delivery else ""
        if scheme not in ("s3", "gs"):
            raise ValidationError(f"delivery must be an s3:// or gs:// URL, got {delivery!r}")
        if scheme == "gs" and not self.supports_gcs:
            raise ValidationError(
                f"{self.title} delivers to S3 only: gs:// delivery is not available there "
                "(use an s3:// bucket on its object storage)"
            )
        if iam_role_arn and not self.supports_iam_role:
            raise ValidationError(
                f"{self.title} has no iamRoleARN delivery: give the bucket's S3 key pair in "
                "storage_options={'key': ..., 'secret': ...} instead of iam_role_arn="
            )


# The presets, one row each: name, title, base URL, token URL, region, S3 endpoint of the
# delivery storage (None: AWS), iamRoleARN delivery, gs:// delivery, aliases. Sentinel Hub US
# West takes its tokens from the main deployment (spec 4); CDSE delivers to S3 only, on
# CloudFerro object storage, without iamRoleARN (spec 5.3).
# fmt: off
_PRESETS: tuple[tuple[Any, ...], ...] = (
    ("sentinel-hub-eu", "Sentinel Hub EU (Frankfurt)", "https://services.sentinel-hub.com",
     _SH_TOKEN_URL, "eu-central-1", None, True, True, ("sentinel-hub", "sh", "eu", "sh-eu")),
    ("sentinel-hub-us-west", "Sentinel Hub US West (Oregon)",
     "https://services-uswest2.sentinel-hub.com", _SH_TOKEN_URL, "us-west-2", None, True, True,
     ("us-west", "uswest2", "us-west-2", "sh-us-west")),
    ("cdse", "Copernicus Data Space Ecosystem (CDSE)", "https://sh.dataspace.copernicus.eu",
     _CDSE_TOKEN_URL, None, "https://s3.waw3-1.cloudferro.com", False, False,
     ("copernicus", "dataspace")),
)
# fmt: on


def _preset(
    name: str,
    title: str,
    base_url: str,
    token_url: str,
    region: str | None,
    storage_endpoint: str | None,
    iam: bool,
    gcs: bool,
    aliases: tuple[str, ...],
) -> Deployment:
    return Deployment(
        name,
        title,
        base_url,
        token_url,
        region=region,
        storage_endpoint=storage_endpoint,
        supports_iam_role=iam,
        supports_gcs=gcs,
        aliases=aliases,
    )


#: Every preset by canonical name.
DEPLOYMENTS: dict[str, Deployment] = {d.name: d for d in (_preset(*row) for row in _PRESETS)}
#: Sentinel Hub on AWS eu-central-1 (Frankfurt): the default deployment.
SENTINEL_HUB_EU = DEPLOYMENTS["sentinel-hub-eu"]
#: Sentinel Hub on AWS us-west-2 (Oregon).
SENTINEL_HUB_US_WEST = DEPLOYMENTS["sentinel-hub-us-west"]
#: Copernicus Data Space Ecosystem: S3 delivery only, to CloudFerro object storage.
CDSE = DEPLOYMENTS["cdse"]
_BY_ALIAS = {alias: d for d in DEPLOYMENTS.values() for alias in (d.name, *d.aliases)}


def deployment(name: str | Deployment) -> Deployment:
    """The preset called ``name`` (canonical name or alias, case-insensitive).

    Raises
    ------
    xasync.errors.ConfigError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Deployment):
        return name
    if isinstance(name, str):
        found = _BY_ALIAS.get(name.strip().lower())
        if found is not None:
            return found
    raise ConfigError(f"unknown deployment {name!r}: choose one of {sorted(DEPLOYMENTS)}")


def deployment_for_url(base_url: str) -> Deployment | None:
    """The preset whose base URL is ``base_url`` (trailing slash ignored), else ``None``."""
    wanted = base_url.rstrip("/").lower()
    for d in DEPLOYMENTS.values():
        if d.base_url == wanted:
            return d
    return None
