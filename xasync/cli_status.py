"""``xasync status``: what S3 holds for the rows that xasync calls delivered under a prefix.

Read from S3 only: the call manifests under ``<delivery>/_xasync/`` say which rows there are and
which requests deliver each of them (its own request, its tiles, or its pack's request: the
manifest rows of tiled and packed calls carry ``sources``); one listing of the prefix says what
each request folder holds (:func:`xasync.delivery.probe_rows`). A request shared by several
rows (a pack, identical rows) is charged once: each row shows its share, so ``cost_pu`` sums to
what was charged.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xasync.cli_table import format_table
from xasync.errors import DeliveryAccessError, ValidationError, XasyncError

if TYPE_CHECKING:
    import pandas as pd

    from xasync.delivery import RowDelivery

logger = logging.getLogger(__name__)

__all__ = ["STATUS_COLUMNS", "cmd_status", "delivery_status"]

#: Columns of :func:`delivery_status`.
STATUS_COLUMNS = [
    "label",
    "state",
    "request_id",
    "bought",
    "requests",
    "cost_pu",
    "error",
    "row_url",
]

#: Columns ``xasync status`` prints (``--json`` gives them all).
SHOWN = ["label", "state", "request_id", "bought", "requests", "cost_pu", "error"]


@dataclass(frozen=True)
class _Row:
    """One row of a manifest: its label and the requests that deliver it."""

    label: Any
    parts: tuple[tuple[str, str], ...]  # (request URL, name: "request", "tile (r, c)", "pack...")
    identifiers: tuple[str, ...]


def delivery_status(delivery: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """What S3 holds for every row that xasync calls delivered under ``delivery``.

    Parameters
    ----------
    delivery : str
        The ``s3://bucket/prefix`` (or ``gs://...``) given to ``process``.
    storage_options : dict, optional
        s3fs (gcsfs for ``gs://``) options (endpoint, credentials).

    Returns
    -------
    pandas.DataFrame
        One row per row of the manifests (the same row in several calls once), columns
        :data:`STATUS_COLUMNS`: ``label``; ``state`` (``done``, ``failed``, ``pending`` or
        ``none``, see below); ``request_id`` (the ids of the requests that delivered the row,
        space-separated: its own, its tiles', or its pack's); ``bought`` (``request``,
        ``6 tiles: 5 done, 1 failed``, ``pack of 12 rows``, with ``shared by n rows`` when
        rows share it); ``requests`` (request folders found, retries included); ``cost_pu``
        (the row's share of what its requests were charged); ``error`` (for a tiled row, each
        failed tile named); ``row_url`` (the requests' folders, space-separated).

    Raises
    ------
    xasync.ValidationError
        ``delivery`` is not an ``s3://``/``gs://`` URL, or holds no xasync manifest.
    xasync.DeliveryAccessError
        S3 cannot be read: no credentials, endpoint unreachable, access denied.

    Notes
    -----
    A row of several requests (tiles) is ``failed`` as soon as one of them failed (its error
    names the tile), else ``pending`` while one runs, ``done`` when all are, and ``none`` when
    some were never created (``bought`` counts each state).
    """
    import pandas as pd

    from xasync import delivery as _delivery
    from xasync.deliveryaccess import delivery_filesystem, delivery_root

    root = delivery_root(delivery)
    fs = delivery_filesystem(storage_options, root)
    try:
        rows = _manifest_rows(fs, root)
        wanted = {url: row.identifiers for row in rows for url, _ in row.parts}
        found = _delivery.probe_rows(fs, wanted)
    except XasyncError:
        raise
    except Exception as exc:  # botocore/s3fs: no credentials, endpoint down, access denied
        raise DeliveryAccessError(_s3_problem(exc, root)) from None
    share = Counter(url for row in rows for url in dict.fromkeys(u for u, _ in row.parts))
    records = [_record(row, found, share) for row in rows]
    return pd.DataFrame(records, columns=STATUS_COLUMNS)


def _manifest_rows(fs: Any, root: str) -> list[_Row]:
    """Every row of the manifests under ``root``, once (a row is its label and its requests)."""
    from xasync import delivery as _delivery

    rows: list[_Row] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for manifest in _delivery.read_manifests(fs, root):
        for entry in manifest.get("rows", []):
            plan = entry["plan"]
            label = _delivery.decode_label(entry["label"]) if "label" in entry else plan["label"]
            sources = entry.get("sources") or ()
            parts = tuple((s["row_url"], s.get("name", "request")) for s in sources)
            parts = parts or ((plan["row_url"], "request"),)
            key = (repr(label), tuple(url for url, _ in parts))
            if key not in seen:
                seen.add(key)
                ids = tuple(o["identifier"] for o in plan["outputs"])
                rows.append(_Row(label, parts, ids))
    if not rows:
        raise ValidationError(f"no xasync delivery manifest found under {root}/_xasync/")
    return rows


def _record(row: _Row, found: dict[str, RowDelivery], share: Counter) -> dict[str, Any]:
    """One line of the table: the row's requests combined."""
    each = [(name, url, found[url]) for url, name in row.parts]
    states = Counter(d.state for _, _, d in each)
    if states["failed"]:
        state = "failed"
    elif states["pending"]:
        state = "pending"
    elif states["done"] == len(each):
        state = "done"
    else:
        state = "none"
    costs = [d.cost / share[url] for _, url, d in each if d.cost is not None]
    failed = [(name, d.error) for name, _, d in each if d.state == "failed"]
    if len(each) == 1:
        error = failed[0][1] if failed else None
    else:
        error = "; ".join(f"{name}: {msg}" for name, msg in failed) or None
    ids = [d.request_id for _, _, d in each if d.request_id]
    return {
        "label": row.label,
        "state": state,
        "request_id": " ".join(ids) if ids else None,
        "bought": _bought(row, states, share),
        "requests": sum(len(d.request_ids) for _, _, d in each),
        "cost_pu": sum(costs) if costs else None,
        "error": error,
        "row_url": " ".join(url for url, _ in row.parts),
    }


def _bought(row: _Row, states: Counter, share: Counter) -> str:
    """``request``, ``pack of 6 rows`` or ``6 tiles: 5 done, 1 failed`` (and who shares it)."""
    if len(row.parts) > 1:
        counts = [f"{states[s]} {s}" for s in ("done", "failed", "pending", "none") if states[s]]
        text = f"{len(row.parts)} tiles: " + ", ".join(counts)
    else:
        text = row.parts[0][1]
    shared = max(share[url] for url, _ in row.parts)
    if shared > 1 and not text.startswith("pack of"):
        text += f", shared by {shared} rows"
    return text


def _s3_problem(exc: Exception, root: str) -> str:
    """One line saying why S3 could not be read (no traceback, no secret)."""
    name = type(exc).__name__
    if "Credential" in name:
        hint = "no S3 credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use --anon"
    elif (
        "Connect" in name or "Endpoint" in name or isinstance(exc, (ConnectionError, TimeoutError))
    ):
        hint = "the S3 endpoint cannot be reached (check --endpoint-url and the network)"
    elif isinstance(exc, PermissionError):
        hint = "access denied (check the credentials' rights on the bucket)"
    else:
        hint = str(exc).splitlines()[0][:200] if str(exc) else "S3 error"
    return f"cannot read {root}: {hint} ({name})"


def add_status_parser(sub: Any) -> None:
    """The ``status`` sub-command's arguments."""
    s = sub.add_parser(
        "status",
        help="table of what was delivered under an s3:// (or gs://) prefix",
        description=(
            "List the rows that xasync calls delivered under DELIVERY (from their manifests "
            "in DELIVERY/_xasync/) and what S3 holds for each: request ids (a tiled row's "
            "tiles, a packed row's group request), state, cost in processing units (a shared "
            "request split among its rows), errors. Reads S3 only; S3 credentials come from "
            "the AWS environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); for gs:// the "
            "Google environment (GOOGLE_APPLICATION_CREDENTIALS, gcloud) as gcsfs finds it."
        ),
    )
    s.add_argument("delivery", help="the s3:// or gs://bucket/prefix given to process()")
    s.add_argument("--endpoint-url", default=None, help="S3/GCS endpoint (e.g. the emulator's)")
    s.add_argument("--anon", action="store_true", help="anonymous S3/GCS access")
    s.add_argument(
        "--json", action="store_true", help="print the rows and totals as one JSON object"
    )


def cmd_status(args: argparse.Namespace) -> int:
    """``xasync status``: print the table (or JSON); 1 when some row failed, else 0."""
    from xasync.gcs import is_gcs

    so: dict[str, Any] = {}
    gcs = is_gcs(args.delivery)
    if args.endpoint_url:
        so.update(
            {"endpoint_url": args.endpoint_url}
            if gcs
            else {"client_kwargs": {"endpoint_url": args.endpoint_url}}
        )
    if args.anon:
        so.update({"token": "anon"} if gcs else {"anon": True})
    table = delivery_status(args.delivery, so or None)
    counts = table["state"].value_counts().to_dict()
    cost = float(table["cost_pu"].fillna(0).sum())
    requests = len({u for urls in table["row_url"] for u in urls.split()})
    if getattr(args, "json", False):
        print(json.dumps(_as_json(table, args.delivery, counts, cost, requests), default=str))
    else:
        print(format_table(table, SHOWN))
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(
            f"\n{len(table)} rows ({summary}) from {requests} requests, {cost:.2f} PU "
            f"under {args.delivery}"
        )
    return 0 if counts.get("failed", 0) == 0 else 1


def _as_json(
    table: pd.DataFrame, delivery: str, counts: dict, cost: float, requests: int
) -> dict[str, Any]:
    """The ``--json`` document: every column of every row, whole, and the totals."""
    rows: Sequence[dict[str, Any]] = (
        table.astype(object).where(table.notna(), None).to_dict("records")
    )
    return {
        "delivery": delivery,
        "rows": list(rows),
        "states": {str(k): int(v) for k, v in counts.items()},
        "requests": requests,
        "cost_pu": cost,
    }
