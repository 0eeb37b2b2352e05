"""What the delivery already holds, for an estimate: which requests exist, what is left to pay.

``estimate`` plans exactly as ``process`` does (:func:`xasync.pack_reuse.plan_reusing`: rows
bought alone, in packs or as tiles by earlier calls are read from those requests) and then
marks each request: ``delivered``, ``running`` (or claimed), ``failed`` or ``new``. ``process``
pays for the new ones only (and the failed ones with ``resubmit_failed=True``): that is the
``pu_to_pay`` column. The look costs one listing of the delivery root, a read of the call
manifests when some row would be bought, and one recursive listing for the states.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from xasync.errors import DeliveryAccessError, XasyncError

logger = logging.getLogger(__name__)

__all__ = [
    "STATE_NAMES",
    "look_at_delivery",
    "mark_existing",
    "mark_unknown",
    "plan_looking",
    "with_delivery",
]

#: How ``request_state`` names :func:`xasync.pack_reuse.request_states`' states.
STATE_NAMES = {"done": "delivered", "pending": "running", "failed": "failed", "none": "new"}


def look_at_delivery(
    delivery: str | None, storage_options: Mapping[str, Any] | None, check: bool | None
) -> Any:
    """The listing of the delivery root (:class:`xasync.bought_alone.Bought`), or None.

    Parameters
    ----------
    delivery : str or None
        The delivery given to ``estimate`` (None: nothing to look at).
    storage_options : mapping, optional
        fsspec options of the delivery.
    check : bool or None
        False: do not look. True: look, and raise when it cannot be read. None: look when
        ``delivery`` is given; when it cannot be read, log a warning and return None.

    Raises
    ------
    xasync.DeliveryAccessError
        ``check=True`` and the delivery cannot be listed (or no ``delivery`` is given).
    """
    from xasync.bought_alone import bought_requests
    from xasync.deliveryaccess import _delivery_root, delivery_filesystem

    if check is False or (delivery is None and check is None):
        return None
    if delivery is None:
        raise DeliveryAccessError("check_delivery=True needs delivery='s3://...' (or 'gs://...')")
    root = _delivery_root(delivery)
    try:
        return bought_requests(delivery_filesystem(storage_options, root), root)
    except XasyncError as exc:
        return _unreadable(exc, check)
    except Exception as exc:  # the filesystem could not even be made (options, missing package)
        return _unreadable(DeliveryAccessError(f"{type(exc).__name__}: {exc}"), check)


def _unreadable(exc: XasyncError, check: bool | None) -> None:
    if check:
        raise exc
    logger.warning(
        "estimate without looking at the delivery (%s); pu_to_pay is the full price", exc
    )
    return None


def mark_existing(
    frame: pd.DataFrame,
    row_urls: Sequence[Sequence[str]],
    costs: Mapping[str, float],
    states: Mapping[str, str],
    *,
    resubmit_failed: bool = False,
) -> pd.DataFrame:
    """Add ``request_state`` and ``pu_to_pay`` to an estimate frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        The estimate, one row per GeoDataFrame row.
    row_urls : sequence of sequence of str
        Per row, its requests' URLs, in the order of its ``requests`` column.
    costs : mapping
        ``{url: estimated PU of the whole request}``.
    states : mapping
        ``{url: "done" | "pending" | "failed" | "none"}``.
    resubmit_failed : bool
        Whether failed requests are bought again (as ``process(resubmit_failed=True)``).

    Returns
    -------
    pandas.DataFrame
        ``frame`` with ``request_state`` (space-separated, per request: ``delivered``,
        ``running``, ``failed`` or ``new``) and ``pu_to_pay`` (the row's share of the new
        requests: a request shared by ``n`` rows counts ``1/n`` for each). ``attrs["pu_to_pay"]``
        is the total, ``attrs["delivery_checked"]`` True.
    """
    paid = {"none", "failed"} if resubmit_failed else {"none"}
    shares: dict[str, int] = {}
    for urls in row_urls:
        for u in set(urls):
            shares[u] = shares.get(u, 0) + 1
    frame = frame.copy()
    frame["request_state"] = [" ".join(STATE_NAMES[states[u]] for u in urls) for urls in row_urls]
    frame["pu_to_pay"] = [
        float(sum(costs[u] / shares[u] for u in urls if states[u] in paid)) for urls in row_urls
    ]
    frame.attrs["pu_to_pay"] = float(sum(costs[u] for u in shares if states[u] in paid))
    frame.attrs["delivery_checked"] = True
    return frame


def mark_unknown(frame: pd.DataFrame) -> pd.DataFrame:
    """The same columns when the delivery was not looked at: everything counted as to pay."""
    frame = frame.copy()
    frame["request_state"] = "unknown"
    frame["pu_to_pay"] = frame["estimated_pu"].astype(float)
    frame.attrs["pu_to_pay"] = float(frame.attrs.get("total_pu", frame["estimated_pu"].sum()))
    frame.attrs["delivery_checked"] = False
    return frame


def _costs_and_urls(
    frame: pd.DataFrame, specs: Sequence[Any], planned: Any, keywords: Mapping[str, Any]
) -> tuple[list[tuple[str, ...]], dict[str, float], dict[str, tuple[str, ...]]]:
    """Per row its request URLs; each request's full PU and output identifiers."""
    from xasync.rowcost import request_factors_by_url

    urls: list[tuple[str, ...]]
    if planned is None:
        urls = [(s.row_url,) for s in specs]
        costs = {s.row_url: float(pu) for s, pu in zip(specs, frame["request_pu"], strict=True)}
        ids = {s.row_url: tuple(s.responses) for s in specs}
        return urls, costs, ids
    urls = [tuple(planned.requests[k].row_url for k in ks) for ks in planned.row_requests]
    factors = request_factors_by_url(planned.requests, **keywords)
    ids = {r.row_url: tuple(r.responses) for r in planned.requests}
    return urls, {u: float(f.pu) for u, f in factors.items()}, ids


def with_delivery(
    frame: pd.DataFrame,
    specs: Sequence[Any],
    planned: Any,
    bought: Any,
    keywords: Mapping[str, Any],
    *,
    resubmit_failed: bool = False,
    check: bool | None = None,
) -> pd.DataFrame:
    """``frame`` with ``request_state`` and ``pu_to_pay`` (:func:`mark_existing`).

    ``bought`` None (the delivery was not looked at): :func:`mark_unknown`. ``keywords`` are
    those of :func:`xasync.estimate.request_costs`; ``check`` as in :func:`look_at_delivery`.
    """
    from xasync.pack_reuse import request_states

    if bought is None:
        return mark_unknown(frame)
    urls, costs, ids = _costs_and_urls(frame, specs, planned, keywords)
    try:
        states = request_states(bought, list(ids), ids)
    except Exception as exc:  # s3fs/gcsfs/botocore while probing: a typed error or the fallback
        _unreadable(DeliveryAccessError(f"cannot probe the delivery: {type(exc).__name__}"), check)
        return mark_unknown(frame)
    return mark_existing(frame, urls, costs, states, resubmit_failed=resubmit_failed)


def plan_looking(specs: Sequence[Any], bought: Any, check: bool | None, **plan: Any) -> tuple:
    """``(plan_reusing(specs, bought=bought, **plan), bought)``; when reading the manifests
    fails, the plan without looking and None (or a ``DeliveryAccessError`` with ``check``)."""
    from xasync.pack_reuse import plan_reusing

    if bought is None:
        return plan_reusing(specs, **plan), None
    try:
        return plan_reusing(specs, bought=bought, **plan), bought
    except XasyncError as exc:
        if not isinstance(exc, DeliveryAccessError):
            raise
        _unreadable(exc, check)
    except Exception as exc:  # s3fs/gcsfs/botocore reading the manifests
        _unreadable(DeliveryAccessError(f"cannot read the manifests: {type(exc).__name__}"), check)
    return plan_reusing(specs, **plan), None
