"""Where a call delivers: the delivery URL, the credentials the service writes with, the
filesystem that probes it, and the check that Sentinel Hub credentials work, before paying.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xasync.errors import OptionError, ValidationError
from xasync.gcs import gcs_filesystem, gs_delivery_extras, is_gcs

if TYPE_CHECKING:
    from xasync.client import Client

logger = logging.getLogger(__name__)

__all__ = [
    "check_credentials",
    "delivery_credentials",
    "delivery_extras",
    "delivery_filesystem",
    "delivery_root",
]


def delivery_root(url: str) -> str:
    """The delivery URL without its trailing ``/``, checked before paying.

    Raises
    ------
    ValidationError
        ``url`` is not an ``s3://bucket/prefix`` or ``gs://bucket/prefix`` URL.

    """
    if not isinstance(url, str) or not url.startswith(("s3://", "gs://")) or len(url) <= 5:
        raise ValidationError(
            f"delivery must be an 's3://bucket/prefix' or 'gs://bucket/prefix' URL, got {url!r}"
        )
    return url.rstrip("/")


def delivery_extras(
    root: str, storage_options: Mapping[str, Any] | None, iam_role_arn: str | None, gcs: Any
) -> dict[str, Any]:
    """The fields of ``output.delivery.s3`` (or ``.gs``) besides the URL, checked before paying.

    Raises
    ------
    OptionError
        ``gcs`` credentials for an ``s3://`` delivery, or credentials that do not fit.

    """
    if is_gcs(root):
        return gs_delivery_extras(gcs, iam_role_arn)
    if gcs is not None:
        raise OptionError("gcs_credentials applies to gs:// deliveries only")
    return delivery_credentials(storage_options, iam_role_arn)


def delivery_credentials(
    storage_options: Mapping[str, Any] | None,
    iam_role_arn: str | None,
) -> dict[str, Any]:
    """The ``output.delivery.s3`` credentials the service needs to write to the user's bucket.

    Taken from ``storage_options`` (``key``/``secret``, as s3fs names them), else from the
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` environment, or an IAM role to assume.
    """
    so = dict(storage_options or {})
    extras: dict[str, Any] = {}
    key = so.get("key") or so.get("aws_access_key_id")
    secret = so.get("secret") or so.get("aws_secret_access_key")
    if not (key and secret) and not iam_role_arn:
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        extras["accessKey"] = key
        extras["secretAccessKey"] = secret
    if iam_role_arn:
        extras["iamRoleARN"] = iam_role_arn
    if not extras:
        raise ValidationError(
            "the service needs credentials to write to your bucket: pass "
            "storage_options={'key': ..., 'secret': ...} or iam_role_arn=..., or set "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    region = so.get("client_kwargs", {}).get("region_name") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        extras["region"] = region
    return extras


def delivery_filesystem(storage_options: Mapping[str, Any] | None, url: str = "s3://") -> Any:
    """A filesystem for probing the delivery at ``url`` (listing caches off).

    s3fs for ``s3://``, gcsfs (:func:`xasync.gcs.gcs_filesystem`) for ``gs://``.
    """
    if is_gcs(url):
        return gcs_filesystem(storage_options, use_listings_cache=False)
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False, **dict(storage_options or {}))


def check_credentials(client: Client) -> None:
    """Fetch a token now, so that wrong credentials fail before anything is submitted.

    The client raises the documented types itself (docs/guide/errors.md): ``ConfigError``
    (missing credentials), ``AuthError`` (refused), ``TransportError`` (unreachable).
    """
    check = getattr(client, "check_credentials", None)
    if check is not None:
        check()
