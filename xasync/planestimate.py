"""The estimate of a planned call: each row's requests, their cost and its share of them.

Rows delivered by one request (a pack, or the row's own request) take the figures of that
request, computed once per request; only rows delivered by several requests (tiles) are summed
row by row. The figures are those of summing every row's requests (the same floats).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xasync.planned import PlannedSpecs
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = ["estimate_planned"]


def _shares(urls: Sequence[str], row_requests: Sequence[tuple[int, ...]]) -> dict[str, int]:
    """For each request URL, the number of rows that need it."""
    shares: dict[str, int] = {}
    for ks in row_requests:
        if len(ks) == 1:
            u = urls[ks[0]]
            shares[u] = shares.get(u, 0) + 1
        else:
            for u in {urls[k] for k in ks}:
                shares[u] = shares.get(u, 0) + 1
    return shares


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
    shares = _shares(urls, planned.row_requests)
    alone: list[tuple | None] = [None] * len(urls)  # figures of a row delivered by one request
    for k, u in enumerate(urls):
        if u in shares:
            alone[k] = _row_values((k,), urls, costs, shares)
    values = [alone[ks[0]] if len(ks) == 1 else None for ks in planned.row_requests]
    for i, ks in enumerate(planned.row_requests):
        if values[i] is None:
            values[i] = _row_values(ks, urls, costs, shares)
    columns = list(zip(*values, strict=True)) if values else [()] * 7
    data = dict(zip(ESTIMATE_COLUMNS[:1] + ESTIMATE_COLUMNS[3:], columns, strict=True))
    data["width"] = [s.grid.width for s in specs]
    data["height"] = [s.grid.height for s in specs]
    frame = pd.DataFrame({c: list(data[c]) for c in ESTIMATE_COLUMNS}, index=idx)
    frame.attrs["total_pu"] = float(sum(f.pu for f in costs.values()))
    frame.attrs["requests"] = len(costs)
    return frame
