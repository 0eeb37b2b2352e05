"""Row-level results of ``temporal="requests"``: one Dataset per row, several requests per row.

:class:`SeriesResults` is a :class:`~xasync.results.Results`: indexing (positions, labels,
slices), iteration, ``datasets``, ``labels``, ``positions``, ``wait()``, ``cancel()``, ``done``,
``cost``, ``job`` and ``status()`` work as they do there, per row of the GeoDataFrame (each
Dataset has the ``time`` dimension), so code written for one works with the other. The state of
every (row, interval) request is ``results.requests.status()``, indexed by
``(row label, interval start)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from xasync.results import STATUS_COLUMNS, Results

__all__ = ["SeriesResults"]


class SeriesResults(Results):
    """Lazy row Datasets (``time`` dimension) over one request per row and interval.

    Parameters
    ----------
    requests : Results
        The results of every (row, interval) request, indexed by ``(label, time)``, row ``i``'s
        requests at positions ``i * n .. (i + 1) * n - 1`` (``n`` intervals).
    index : pandas.Index
        The rows' labels.
    build : callable
        ``build(row) -> xarray.Dataset``.
    """

    def __init__(self, requests: Results, index: pd.Index, build: Callable[[int], Any]) -> None:
        if len(index) == 0 or len(requests) % len(index):
            raise ValueError("requests must hold the same number of requests for every row")
        # Not Results.__init__: the job tracks the requests, several per row.
        self.requests = requests
        self._datasets = [None] * len(index)
        self._build = build
        self._lock = threading.Lock()
        self._index = index
        self._job = requests.job
        self._estimated = None
        self._per_row = len(requests) // len(index)
        self.delivery = requests.delivery

    def status(self) -> pd.DataFrame:
        """The state of every row, indexed like the GeoDataFrame (columns of :class:`Results`).

        A row's ``state`` is ``failed`` if one of its requests failed, ``done`` once all are
        done, else ``running`` (some running or done), ``claimed`` or ``queued``; ``submitted``
        is its first request's, ``finished`` its last one's (NaT until all finished);
        ``cost_pu`` and ``estimated_pu`` are sums; ``request_id`` and ``requests`` are tuples
        (one entry per interval); ``error`` is the first error; ``reused`` is true if every
        request was delivered before this call. Per request: ``results.requests.status()``.
        """
        per = self.requests.status()
        n = self._per_row
        rows = [_row_status(per.iloc[i * n : (i + 1) * n]) for i in range(len(self))]
        frame = pd.DataFrame(rows, columns=STATUS_COLUMNS, index=self._index)
        for col in ("submitted", "finished"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def __repr__(self) -> str:
        inner = repr(self.requests).removeprefix("<xasync.Results: ").rstrip(">")
        return f"<xasync.SeriesResults: {len(self)} rows, requests: {inner}>"


def _row_state(states: pd.Series) -> str:
    s = set(states)
    if "failed" in s:
        return "failed"
    if s == {"done"}:
        return "done"
    if s & {"running", "done"}:
        return "running"
    return "claimed" if "claimed" in s else "queued"


def _row_status(part: pd.DataFrame) -> dict[str, Any]:
    errors = part["error"].dropna()
    return {
        "request_id": tuple(part["request_id"]),
        "state": _row_state(part["state"]),
        "submitted": part["submitted"].min(),
        "finished": part["finished"].max() if part["finished"].notna().all() else pd.NaT,
        "cost_pu": float(part["cost_pu"].sum()),
        "estimated_pu": float(part["estimated_pu"].sum(min_count=1)),
        "requests": tuple(part["requests"]),
        "error": errors.iloc[0] if len(errors) else None,
        "reused": bool(part["reused"].all()),
    }
