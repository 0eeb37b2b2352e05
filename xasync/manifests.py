"""Call manifests under ``<delivery root>/_xasync/`` and the typed form of row labels in them.

The schema is described in :mod:`xasync.delivery`'s docstring. Labels are stored with
:func:`encode_label` so that :func:`decode_label` gives back the same value and type
(``pd.Timestamp``, ``datetime``, ``date``, tuples of a MultiIndex).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import logging
import zlib
from collections.abc import Iterable
from typing import Any

from xasync.errors import ValidationError

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_DIR",
    "MANIFEST_VERSION",
    "decode_label",
    "encode_label",
    "manifest_dir",
    "read_manifests",
    "write_manifest",
    "write_manifest_text",
]

#: Folder under the delivery root that holds the call manifests.
MANIFEST_DIR = "_xasync"
#: Version of the manifest schema written by :func:`write_manifest`.
MANIFEST_VERSION = 1
#: Manifests larger than this are written gzip-compressed, as ``<call_token>.json.gz``.
GZIP_ABOVE_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def _split_url(url: str) -> tuple[str, str]:
    if "://" in url:
        protocol, path = url.split("://", 1)
    else:
        protocol, path = "", url
    return protocol, path.strip("/")


def _join_url(protocol: str, path: str) -> str:
    return f"{protocol}://{path}" if protocol else path


def forget_listings(fs: Any, root: str) -> None:
    """Forget cached listings of ``root``, its parents AND its children (s3fs keeps children)."""
    fs.invalidate_cache(root)
    cache = getattr(fs, "dircache", None)
    if cache is not None:
        for path in [p for p in list(cache) if p.startswith(root.rstrip("/") + "/")]:
            cache.pop(path, None)


# --------------------------------------------------------------------------- manifests


def manifest_dir(delivery_root: str) -> str:
    """``<delivery root>/_xasync``: the folder of the call manifests."""
    protocol, path = _split_url(delivery_root)
    if not path:
        raise ValidationError(f"delivery root must name a bucket, got {delivery_root!r}")
    return _join_url(protocol, f"{path}/{MANIFEST_DIR}")


def write_manifest(fs: Any, delivery_root: str, call_token: str, rows: list[dict[str, Any]]) -> str:
    """Write the manifest of one ``process`` call; see the module docstring for its schema.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        Filesystem of the delivery bucket.
    delivery_root : str
        ``s3://bucket/prefix`` as passed to ``process``.
    call_token : str
        Deterministic id of the call (file name of the manifest).
    rows : list of dict
        One JSON-able object per row: ``{"position", "plan": ReadPlan.to_dict(), "body"}``
        (the body without secrets); a flat row with ``token`` and ``row_url`` is accepted too.

    Returns
    -------
    str
        The manifest's URL.

    """
    if not call_token or "/" in call_token:
        raise ValidationError(f"call_token must be a non-empty name without '/': {call_token!r}")
    for i, row in enumerate(rows):
        plan = row.get("plan") if isinstance(row, dict) else None
        ids = plan if isinstance(plan, dict) else row
        if not isinstance(ids, dict) or "token" not in ids or "row_url" not in ids:
            raise ValidationError(
                f"manifest row {i} needs 'token' and 'row_url' (at its top level or in 'plan')"
            )
    doc = {
        "version": MANIFEST_VERSION,
        "call_token": call_token,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }
    try:
        payload = json.dumps(doc, sort_keys=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"manifest rows are not JSON-able: {exc}") from exc
    url = f"{manifest_dir(delivery_root)}/{call_token}.json"
    fs.pipe_file(url, payload)
    logger.info("wrote manifest %s (%d rows)", url, len(rows))
    return url


def write_manifest_text(
    fs: Any, delivery_root: str, call_token: str, row_texts: Iterable[str]
) -> str:
    """:func:`write_manifest` for rows already written as JSON text (one object each).

    The document is the same; above :data:`GZIP_ABOVE_BYTES` it is stored gzip-compressed as
    ``<call_token>.json.gz`` (100,000 rows are about 100 MB of JSON, a few MB compressed),
    compressed as the rows come, so the whole text is never held at once. Returns the URL.
    """
    if not call_token or "/" in call_token:
        raise ValidationError(f"call_token must be a non-empty name without '/': {call_token!r}")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    head = f'{{"call_token":{json.dumps(call_token)},"created":{json.dumps(created)},"rows":['
    plain: list[bytes] = [head.encode()]
    size, rows, packer, batch, out = len(plain[0]), 0, None, [], []
    for text in row_texts:
        piece = ("," + text if rows else text).encode()
        rows += 1
        if packer is None:
            plain.append(piece)
            size += len(piece)
            if size > GZIP_ABOVE_BYTES:  # big: compress from here on
                packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip stream
                out = [packer.compress(b"".join(plain))]
                plain = []
        else:
            batch.append(piece)
            if len(batch) >= 1000:  # compressed in batches: one call per row costs more
                out.append(packer.compress(b"".join(batch)))
                batch = []
    if batch and packer is not None:
        out.append(packer.compress(b"".join(batch)))
    tail = f'],"version":{MANIFEST_VERSION}}}'.encode()
    url = f"{manifest_dir(delivery_root)}/{call_token}.json"
    if packer is None:
        payload = b"".join([*plain, tail])
    else:
        payload, url = b"".join([*out, packer.compress(tail), packer.flush()]), url + ".gz"
    fs.pipe_file(url, payload)
    logger.info("wrote manifest %s (%d rows, %d bytes)", url, rows, len(payload))
    return url


def read_manifests(fs: Any, delivery_root: str) -> list[dict[str, Any]]:
    """All call manifests under ``delivery_root``, oldest first.

    Files that are not valid version-1 manifests are skipped with a warning in the log.
    """
    mdir = manifest_dir(delivery_root)
    forget_listings(fs, fs._strip_protocol(mdir))
    try:
        names = [p for p in fs.ls(mdir, detail=False) if p.endswith((".json", ".json.gz"))]
    except FileNotFoundError:
        return []
    if not names:
        return []
    got = fs.cat(names, on_error="return")
    if not isinstance(got, dict):
        got = {names[0]: got}
    out = []
    for name, raw in sorted(got.items()):
        if isinstance(raw, Exception):
            logger.warning("manifest %s could not be read: %s", name, type(raw).__name__)
            continue
        try:
            doc = json.loads(gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw)
        except (ValueError, OSError, EOFError):
            logger.warning("manifest %s is not JSON; skipped", name)
            continue
        if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
            logger.warning("manifest %s has an unknown version; skipped", name)
            continue
        out.append(doc)
    out.sort(key=lambda d: (str(d.get("created", "")), str(d.get("call_token", ""))))
    return out


# --------------------------------------------------------------------------- labels

_LABEL_TYPE = "$xasync_label"


def encode_label(value: Any) -> Any:
    """A row label as JSON that :func:`decode_label` turns back into the same value and type.

    Strings, integers, floats, booleans and None are stored as they are; numpy scalars as their
    Python value; ``pd.Timestamp``/``datetime``/``date`` and tuples (MultiIndex labels, nested)
    as small typed objects; anything else as its string (typed ``"str"``, so it stays a string).
    """
    import pandas as pd

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if not isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)) and callable(item):
        try:
            return encode_label(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, pd.Timestamp):
        return {_LABEL_TYPE: "timestamp", "value": value.isoformat()}
    if isinstance(value, _dt.datetime):
        return {_LABEL_TYPE: "datetime", "value": value.isoformat()}
    if isinstance(value, _dt.date):
        return {_LABEL_TYPE: "date", "value": value.isoformat()}
    if isinstance(value, tuple):
        return {_LABEL_TYPE: "tuple", "items": [encode_label(v) for v in value]}
    return {_LABEL_TYPE: "str", "value": str(value)}


def decode_label(doc: Any) -> Any:
    """Inverse of :func:`encode_label`."""
    import pandas as pd

    if not isinstance(doc, dict) or _LABEL_TYPE not in doc:
        return doc
    kind = doc[_LABEL_TYPE]
    if kind == "timestamp":
        return pd.Timestamp(doc["value"])
    if kind == "datetime":
        return _dt.datetime.fromisoformat(doc["value"])
    if kind == "date":
        return _dt.date.fromisoformat(doc["value"])
    if kind == "tuple":
        return tuple(decode_label(v) for v in doc["items"])
    return str(doc.get("value"))
