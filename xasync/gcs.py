"""Google Cloud Storage delivery: URLs, the gcsfs filesystem, service-account credentials.

The service writes a ``gs://`` delivery with a service account whose JSON the request carries
base64-encoded (``output.delivery.gs.credentials``). Here that JSON is loaded (from a path or a
dict), checked and encoded; it is kept only inside the request bodies the submitter builds, never
in a repr, a log line, Dataset attrs or the dask graph (readers use ``storage_options``).

xasync reads GCS through ``gcsfs.core.GCSFileSystem``, the plain JSON-API filesystem: gcsfs 2026.x
exports by default an "extended" class that first asks a gRPC control plane for the bucket type,
which against a custom ``endpoint_url`` (the emulator) hangs 60 s per bucket, and which Async
delivery buckets (standard buckets) do not need.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from xasync.errors import OptionError, ValidationError

logger = logging.getLogger(__name__)

#: URL schemes of Google Cloud Storage.
GCS_SCHEMES = ("gs://", "gcs://")
#: Fields a service-account JSON must have (the service writes with it).
SERVICE_ACCOUNT_FIELDS = ("type", "project_id", "private_key", "client_email")


def is_gcs(url: str) -> bool:
    """Whether ``url`` is a Google Cloud Storage URL (``gs://`` or ``gcs://``)."""
    return isinstance(url, str) and url.startswith(GCS_SCHEMES)


def gcs_filesystem(storage_options: Mapping[str, Any] | None = None, **extra: Any) -> Any:
    """A ``gcsfs.core.GCSFileSystem`` with ``storage_options`` (endpoint_url, token, project).

    Raises
    ------
    xasync.OptionError
        gcsfs is not installed (``pip install xasync[gcs]``).
    """
    try:
        from gcsfs.core import GCSFileSystem
    except ImportError:
        raise OptionError(
            "gs:// delivery needs gcsfs: pip install 'xasync[gcs]'",
        ) from None
    return GCSFileSystem(**{**dict(storage_options or {}), **extra})


def _load_account(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (str, os.PathLike)):
        try:
            with open(value, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except OSError as exc:
            raise ValidationError(
                f"gcs_credentials: cannot read the service-account file {os.fspath(value)!r} "
                f"({type(exc).__name__})"
            ) from None
        except ValueError:
            raise ValidationError(
                f"gcs_credentials: {os.fspath(value)!r} is not a JSON document"
            ) from None
        if not isinstance(loaded, dict):
            raise ValidationError("gcs_credentials: the file must hold a JSON object")
        return loaded
    raise ValidationError(
        "gcs_credentials must be the path of a service-account JSON file or its dict, "
        f"got {type(value).__name__}"
    )


def encode_credentials(value: Any) -> str:
    """``delivery.gs.credentials``: base64 of the service-account JSON ``value`` names.

    Parameters
    ----------
    value : str, os.PathLike or dict
        The path of a service-account JSON file, or its content as a dict.

    Raises
    ------
    xasync.ValidationError
        Unreadable file, not JSON, or a JSON without the service-account fields (the message
        names the missing fields, never their values).
    """
    account = _load_account(value)
    missing = [k for k in SERVICE_ACCOUNT_FIELDS if not isinstance(account.get(k), str)]
    if missing:
        raise ValidationError(
            f"gcs_credentials: the service-account JSON lacks {', '.join(missing)}"
        )
    if account["type"] != "service_account":
        raise ValidationError(
            f"gcs_credentials: type must be 'service_account', got {account['type']!r}"
        )
    return base64.b64encode(json.dumps(account).encode("utf-8")).decode("ascii")


def gs_delivery_extras(gcs_credentials: Any, iam_role_arn: str | None) -> dict[str, Any]:
    """The ``output.delivery.gs`` fields besides ``url``: ``{"credentials": base64}``.

    Raises
    ------
    xasync.ValidationError
        No credentials (the service cannot write without them), or an IAM role (S3 only).
    """
    if iam_role_arn:
        raise ValidationError(
            "iam_role_arn applies to s3:// deliveries; gs:// takes gcs_credentials"
        )
    if gcs_credentials is None:
        raise ValidationError(
            "the service needs a service account to write to your GCS bucket: pass "
            "gcs_credentials='path/to/service-account.json' (or its dict)"
        )
    return {"credentials": encode_credentials(gcs_credentials)}


__all__ = ["encode_credentials", "gcs_filesystem", "gs_delivery_extras", "is_gcs"]
