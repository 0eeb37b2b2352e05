"""The estimate of a planned call: each row's requests, their cost and its share of them.

Rows delivered by one request (a pack, or the row's own request) take the figures of that
request, computed once per request; only rows delivered by several requests (tiles) are summed
row by row. The figures are those of summing every row's requests (the same floats).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xasync.planned import PlannedSpecs
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = ["estimate_planned"]

#: The columns of the estimate that depend on a row's requests (see :func:`_row_values`).
_FIGURES = [
    "requests",
    "input_bands",
    "samples",
    "request_pu",
    "shared_by",
    "estimated_pu",
    "exact",
]


def _shares(
    urls: Sequence[str], row_requests: Sequence[tuple[int, ...]], single: np.ndarray
) -> dict[str, int]:
    """For each request URL, the number of rows that need it (``single``: each row's only
    request, or -1 when it has several)."""
    slot = {u: j for j, u in enumerate(dict.fromkeys(urls))}
    of_request = np.fromiter((slot[u] for u in urls), dtype=np.int64, count=len(urls))
    counts = np.bincount(of_request[single[single >= 0]], minlength=len(slot))
    for i in np.flatnonzero(single < 0).tolist():
        for u in {urls[k] for k in row_requests[i]}:
            counts[slot[u]] += 1
    return {u: int(counts[j]) for u, j in slot.items() if counts[j]}


def _row_values(
    ks: tuple[int, ...], urls: Sequence[str], costs: dict[str, Any], shares: dict[str, int]
) -> tuple:
    """``(requests, input_bands, samples, request_pu, shared_by, estimated_pu, exact)`` of a
    row delivered by the requests ``ks``."""
    row_urls = [urls[k] for k in ks]
    fs = [costs[u] for u in row_urls]
    return (
        " ".join(u.rsplit("/", 1)[-1] for u in row_urls),
        fs[0].input_bands,
        fs[0].samples,
        sum(f.pu for f in fs),
        shares[row_urls[0]],
        sum(costs[u].pu / shares[u] for u in row_urls),
        all(f.exact for f in fs),
    )


def estimate_planned(
    planned: PlannedSpecs,
    specs: Sequence[RequestSpec],
    index: Any = None,
    **keywords: Any,
) -> Any:
    """The estimate frame of :func:`xasync.estimate.estimate_specs` for a planned call.

    A row's ``requests`` names every request it needs (space-separated folders), its
    ``request_pu`` is their summed cost and its ``estimated_pu`` its share of them (a request
    shared by ``n`` rows counts ``1/n`` for each), so the column sums to ``attrs["total_pu"]``,
    the cost of the distinct requests. ``width``/``height`` are the row's grid.

    ``keywords`` are those of :func:`xasync.estimate.request_costs`.
    """
    import pandas as pd

    from xasync.errors import ValidationError
    from xasync.estimate import ESTIMATE_COLUMNS
    from xasync.rowcost import request_factors_by_url

    idx = pd.RangeIndex(len(specs)) if index is None else pd.Index(index)
    if len(idx) != len(specs):
        raise ValidationError(f"{len(idx)} index labels for {len(specs)} rows")
    costs = request_factors_by_url(planned.requests, **keywords)
    urls = [s.row_url for s in planned.requests]
    rr = planned.row_requests
    single = np.fromiter((ks[0] if len(ks) == 1 else -1 for ks in rr), np.int64, len(rr))
    shares = _shares(urls, rr, single)
    data: dict[str, Any] = {
        "width": [s.grid.width for s in specs],
        "height": [s.grid.height for s in specs],
    }
    if len(specs) and (single >= 0).all():  # each row one request: its figures, taken
        used = [k for k, u in enumerate(urls) if u in shares]
        figures = [_row_values((k,), urls, costs, shares) for k in used]
        per_request = pd.DataFrame(figures, columns=_FIGURES)
        at = np.full(len(urls), -1, dtype=np.int64)
        at[used] = np.arange(len(used))
        data.update({c: per_request[c].to_numpy()[at[single]] for c in _FIGURES})
    elif len(specs):
        values = [_row_values(ks, urls, costs, shares) for ks in rr]
        data.update(zip(_FIGURES, map(list, zip(*values, strict=True)), strict=True))
    if len(specs):
        frame = pd.DataFrame({c: data[c] for c in ESTIMATE_COLUMNS}, index=idx)
    else:
        frame = pd.DataFrame([], index=idx, columns=ESTIMATE_COLUMNS)
    frame.attrs["total_pu"] = float(sum(f.pu for f in costs.values()))
    frame.attrs["requests"] = len(costs)
    return frame
