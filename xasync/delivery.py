"""The S3 delivery layout: what the service wrote under a row's prefix, and call manifests.

Layout of one row (the client sends ``delivery.s3.url = <row_url>``)::

    <row_url>/<REQUEST_ID>/<identifier>.tif     one per raster response, on success
    <row_url>/<REQUEST_ID>/error.json           {"message": ...} on failure
    <row_url>/<REQUEST_ID>/request.json         the request copy (name undocumented; the
                                                emulator's choice), cost added when done

A row prefix may hold several request-id folders (a failed attempt, then a new one). A folder
holding ALL expected outputs wins (the newest such folder if several); completion never depends
on the request copy, whose cost field is only read when the file is found.

Manifests: one JSON object per ``process`` call at ``<delivery_root>/_xasync/<call_token>.json``
(``<call_token>.json.gz``, gzip-compressed, when the text is over 1 MiB) so that a later session can re-attach to earlier results (``xasync.open_delivery``). Schema,
``"version": 1``::

    {
      "version": 1,
      "call_token": "<str>",
      "created": "<RFC 3339 UTC timestamp>",
      "rows": [                       # one object per GeoDataFrame row, in row order
        {
          "position": <int>,          # the row position
          "plan": {...},              # xasync.plan.ReadPlan.to_dict(): token, row_url, grid,
                                      #   outputs, label, time_range, mask_wkb (hex) or null
          "body": {...},              # canonical request body WITHOUT secrets
          ...                         # further keys the writer adds are kept as they are
        }
      ]
    }

What this process knows about requests (outcomes recorded by its submitter) lives in
:mod:`xasync.ledger`, not here: this module only reads and writes S3.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from xasync._contract import ERROR_FILE, REQUEST_COPY_COST_FIELD, REQUEST_COPY_FILE
from xasync.errors import ValidationError
from xasync.manifests import forget_listings

logger = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_DIR",
    "MANIFEST_VERSION",
    "RowDelivery",
    "decode_label",
    "encode_label",
    "probe_row",
    "probe_rows",
    "read_manifests",
    "write_manifest",
]

State = Literal["none", "pending", "done", "failed"]


@dataclass(frozen=True)
class RowDelivery:
    """What S3 holds for one row prefix.

    Attributes
    ----------
    state : {"none", "pending", "done", "failed"}
        ``none``: nothing under the prefix; ``pending``: a request folder exists without all
        outputs nor error.json; ``done``: a folder has every expected output; ``failed``: the
        newest folder holds ``error.json`` and no folder is complete.
    request_ids : tuple of str
        Every request-id folder found, sorted.
    request_id : str or None
        The folder the state refers to.
    outputs : dict
        ``{identifier: url}`` of the chosen folder when done, else empty.
    error : str or None
        The ``message`` of ``error.json`` when failed.
    cost : float or None
        Processing units from the request copy, when found.

    """

    state: State
    request_ids: tuple[str, ...] = ()
    request_id: str | None = None
    outputs: dict[str, str] = field(default_factory=dict, hash=False)
    error: str | None = None
    cost: float | None = None

    @property
    def is_final(self) -> bool:
        """True when done or failed."""
        return self.state in ("done", "failed")


# --------------------------------------------------------------------------- paths


def _split_url(url: str) -> tuple[str, str]:
    """``"s3://b/p/"`` -> ``("s3", "b/p")``; a URL without protocol gets ``""``."""
    if "://" in url:
        protocol, path = url.split("://", 1)
    else:
        protocol, path = "", url
    return protocol, path.strip("/")


def _join_url(protocol: str, path: str) -> str:
    return f"{protocol}://{path}" if protocol else path


def _output_name(identifier: str, extension: str) -> str:
    return f"{identifier}.{extension}"


# --------------------------------------------------------------------------- probing


@dataclass
class _Folder:
    names: set[str] = field(default_factory=set)
    newest: float = 0.0


def _mtime(info: Mapping[str, Any]) -> float:
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return 0.0


def _normalise_rows(
    rows: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]],
) -> list[tuple[str, tuple[str, ...]]]:
    items = rows.items() if isinstance(rows, Mapping) else rows
    out = []
    for row_url, identifiers in items:
        if isinstance(identifiers, str):
            identifiers = (identifiers,)
        ids = tuple(identifiers)
        if not isinstance(row_url, str) or not row_url.strip("/"):
            raise ValidationError(f"row url must be a non-empty string, got {row_url!r}")
        if not ids:
            raise ValidationError(f"no output identifiers given for row {row_url!r}")
        out.append((row_url, ids))
    return out


def _list_root(fs: Any, root: str) -> dict[str, dict[str, Any]]:
    """One recursive listing of ``root`` (paths without protocol) -> ``{path: info}``."""
    forget_listings(fs, root)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    logger.debug("listed %s: %d objects", root, len(found))
    return found


def _by_row(
    row_paths: set[str], listing: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    """The listing's ``(path, info)`` under each row path (a path under two nested row paths
    is under both): one pass over the listing, not one per row."""
    by_row: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for path, info in listing.items():
        cut = path.rfind("/")
        while cut > 0:
            head = path[:cut]
            if head in row_paths:
                by_row.setdefault(head, []).append((path, info))
            cut = path.rfind("/", 0, cut)
    return by_row


def _classify(
    row_path: str,
    identifiers: tuple[str, ...],
    listing: Iterable[tuple[str, Mapping[str, Any]]],
    extension: str,
) -> tuple[State, tuple[str, ...], str | None, dict[str, str]]:
    """State, request ids, chosen id and ``{identifier: path}`` of one row from the
    ``(path, info)`` pairs listed under it."""
    folders: dict[str, _Folder] = {}
    prefix = row_path + "/"
    for path, info in listing:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) < 2 or not parts[0] or info.get("type", "file") != "file":
            continue  # a stray file at the row's top level: not a request folder
        folder = folders.setdefault(parts[0], _Folder())
        if len(parts) == 2:  # deeper files mark the folder but are never outputs
            folder.names.add(parts[1])
        folder.newest = max(folder.newest, _mtime(info))
    request_ids = tuple(sorted(folders))
    if not folders:
        return "none", (), None, {}
    wanted = {i: _output_name(i, extension) for i in identifiers}
    complete = [
        rid for rid, f in folders.items() if all(name in f.names for name in wanted.values())
    ]
    if complete:
        rid = max(complete, key=lambda r: (folders[r].newest, r))
        return "done", request_ids, rid, {i: f"{prefix}{rid}/{n}" for i, n in wanted.items()}
    newest = max(folders, key=lambda r: (folders[r].newest, r))
    if ERROR_FILE in folders[newest].names:
        return "failed", request_ids, newest, {}
    return "pending", request_ids, newest, {}


def _error_message(raw: bytes | Exception) -> str:
    if isinstance(raw, Exception):
        return f"error.json could not be read: {type(raw).__name__}"
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip() or "error.json is empty"
    if isinstance(doc, dict):
        msg = doc.get("message")
        if msg is None and isinstance(doc.get("error"), dict):
            msg = doc["error"].get("message")
        if msg is not None:
            return str(msg)
    return text.strip()


def _cost(raw: bytes | Exception) -> float | None:
    if isinstance(raw, Exception):
        return None
    try:
        doc = json.loads(raw)
        value = doc.get(REQUEST_COPY_COST_FIELD) if isinstance(doc, dict) else None
        return float(value) if value is not None else None
    except (ValueError, TypeError):
        return None


def _common_root(paths: Sequence[str]) -> str:
    """The deepest folder (or path) holding every path: :func:`posixpath.commonpath` of
    relative paths, from the lowest and highest path only plus one check of each."""
    if len(paths) == 1:
        return paths[0]
    prefix = posixpath.commonprefix([min(paths), max(paths)])  # common to all: they lie between
    end = len(prefix)
    if not all(len(p) == end or p[end] == "/" for p in paths):
        end = prefix.rfind("/") if "/" in prefix else 0  # cut inside a name: up to the folder
    return prefix[:end].rstrip("/") if end else ""


def probe_rows(
    fs: Any,
    row_urls_with_identifiers: Mapping[str, Iterable[str]] | Iterable[tuple[str, Iterable[str]]],
    *,
    read_cost: bool = True,
    extension: str = "tif",
) -> dict[str, RowDelivery]:
    """Probe many row prefixes with one recursive listing per bucket.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The filesystem of the delivery (an ``s3fs.S3FileSystem``); its listing cache is
        invalidated first so a stale listing cannot hide a delivery.
    row_urls_with_identifiers : mapping or iterable of pairs
        ``{row_url: identifiers}``: the expected raster identifiers of each row.
    read_cost : bool, default True
        Also read the request copy of done rows for their cost (one batched ``cat``).
    extension : str, default "tif"
        File extension of the outputs.

    Returns
    -------
    dict
        ``{row_url: RowDelivery}`` with the row URLs as given.

    Notes
    -----
    Rows are grouped by bucket; each group is listed once from its common root (``fs.find``,
    which s3fs paginates). Then ``error.json`` of failed rows and the request copies of done rows
    are fetched in one concurrent ``fs.cat`` call.

    """
    rows = _normalise_rows(row_urls_with_identifiers)
    if not rows:
        return {}
    classified = _classify_rows(fs, rows, extension)
    bodies = _read_bodies(fs, classified, read_cost)
    found = {url: _delivery(row, bodies, read_cost) for url, row in classified.items()}
    nothing = RowDelivery(state="none")  # one for every empty prefix (a new call: all of them)
    return {url: found.get(url, nothing) for url, _ in rows}


#: A row with something under its prefix: its path, state, request ids, the id its state refers
#: to and ``{identifier: url}`` of its outputs when done.
_Classified = tuple[str, State, tuple[str, ...], str | None, dict[str, str]]


def _classify_rows(
    fs: Any, rows: list[tuple[str, tuple[str, ...]]], extension: str
) -> dict[str, _Classified]:
    """One listing per bucket; the rows with nothing under their prefix are left out."""
    groups: dict[tuple[str, str], list[tuple[str, str, tuple[str, ...]]]] = {}
    for row_url, ids in rows:
        protocol, path = _split_url(row_url)
        bucket = path.split("/", 1)[0]
        groups.setdefault((protocol, bucket), []).append((row_url, path, ids))
    classified: dict[str, _Classified] = {}
    for (protocol, _bucket), members in groups.items():
        listing = _list_root(fs, _common_root([p for _, p, _ in members]))
        by_row = _by_row({p for _, p, _ in members}, listing) if listing else {}
        for row_url, path, ids in members:
            items = by_row.get(path)
            if not items:
                continue
            state, rids, rid, outs = _classify(path, ids, items, extension)
            urls = {i: _join_url(protocol, p) for i, p in outs.items()}
            classified[row_url] = (path, state, rids, rid, urls)
    return classified


def _read_bodies(
    fs: Any, classified: Mapping[str, _Classified], read_cost: bool
) -> dict[str, bytes | Exception]:
    """``error.json`` of failed rows and the request copies of done rows, one batched ``cat``."""
    to_read: list[str] = []
    for path, state, _rids, rid, _urls in classified.values():
        if state == "failed":
            to_read.append(f"{path}/{rid}/{ERROR_FILE}")
        elif state == "done" and read_cost:
            to_read.append(f"{path}/{rid}/{REQUEST_COPY_FILE}")
    if not to_read:
        return {}
    got = fs.cat(to_read, on_error="return")
    if not isinstance(got, dict):  # a single path returns bytes
        got = {to_read[0]: got}
    return {fs._strip_protocol(k): v for k, v in got.items()}


def _delivery(
    row: _Classified, bodies: Mapping[str, bytes | Exception], read_cost: bool
) -> RowDelivery:
    path, state, rids, rid, urls = row
    error = cost = None
    if state == "failed":
        error = _error_message(bodies.get(f"{path}/{rid}/{ERROR_FILE}", b""))
    elif state == "done" and read_cost:
        raw = bodies.get(f"{path}/{rid}/{REQUEST_COPY_FILE}")
        cost = _cost(raw) if raw is not None else None
    return RowDelivery(
        state=state, request_ids=rids, request_id=rid, outputs=urls, error=error, cost=cost
    )


def probe_row(
    fs: Any,
    row_url: str,
    identifiers: Iterable[str],
    *,
    read_cost: bool = True,
    extension: str = "tif",
) -> RowDelivery:
    """Probe one row prefix (one listing of that prefix); see :func:`probe_rows`."""
    return probe_rows(fs, [(row_url, identifiers)], read_cost=read_cost, extension=extension)[
        row_url
    ]


# manifests and typed labels live in xasync.manifests; re-exported here for existing callers
from xasync.manifests import (  # noqa: E402
    MANIFEST_DIR,
    MANIFEST_VERSION,
    decode_label,
    encode_label,
    read_manifests,
    write_manifest,
)
