"""Row-level results of ``temporal="requests"``: one Dataset per row, several requests per row.

:class:`SeriesResults` wraps the :class:`~xasync.results.Results` of the (row, interval)
requests: indexing, iteration and ``datasets`` are per row (each Dataset has the ``time``
dimension); ``status()``, ``wait()``, ``cancel()``, ``done``, ``cost`` and ``job`` are those of
the requests, ``status()`` indexed by ``(row label, interval start)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pandas as pd

__all__ = ["SeriesResults"]


class SeriesResults:
    """Lazy row Datasets (``time`` dimension) over one request per row and interval.

    Parameters
    ----------
    requests : Results
        The results of every (row, interval) request, indexed by ``(label, time)``.
    index : pandas.Index
        The rows' labels.
    build : callable
        ``build(row) -> xarray.Dataset``.
    """

    def __init__(self, requests: Any, index: pd.Index, build: Callable[[int], Any]) -> None:
        self.requests = requests
        self._index = index
        self._build = build
        self._rows = pd.Series(range(len(index)), index=index)
        self._datasets: list[Any] = [None] * len(index)
        self._lock = threading.Lock()
        self.delivery = requests.delivery

    def __len__(self) -> int:
        return len(self._datasets)

    def _dataset(self, i: int) -> Any:
        with self._lock:
            if self._datasets[i] is None:
                self._datasets[i] = self._build(i)
            return self._datasets[i]

    def __getitem__(self, key: Any) -> Any:
        """``int``: by position; other hashables: by label; slices like :class:`Results`."""
        if isinstance(key, slice):
            if all(k is None or isinstance(k, int) for k in (key.start, key.stop)):
                return [self._dataset(i) for i in self._rows.iloc[key]]
            return [self._dataset(i) for i in self._rows.loc[key]]
        if isinstance(key, int) and not isinstance(key, bool):
            return self._dataset(int(self._rows.iloc[key]))
        try:
            where = self._rows.loc[key]
        except KeyError:
            raise KeyError(f"no row labelled {key!r}") from None
        if isinstance(where, pd.Series):
            return [self._dataset(i) for i in where]
        return self._dataset(int(where))

    def __iter__(self) -> Iterator[Any]:
        return (self._dataset(i) for i in range(len(self)))

    @property
    def labels(self) -> pd.Index:
        """The rows' labels."""
        return self._index

    @property
    def datasets(self) -> pd.Series:
        """The row Datasets as a Series indexed like the GeoDataFrame."""
        values = [self._dataset(i) for i in range(len(self))]
        return pd.Series(values, index=self._index, dtype=object, name="dataset")

    def positions(self, label: Hashable) -> int | list[int]:
        """Position(s) of the row(s) labelled ``label``."""
        where = self._rows.loc[label]
        return [int(v) for v in where] if isinstance(where, pd.Series) else int(where)

    # -- the requests' state ----------------------------------------------------------
    @property
    def job(self) -> Any:
        """The requests' live state tracker."""
        return self.requests.job

    def status(self) -> pd.DataFrame:
        """The state of every (row, interval) request, indexed by ``(label, time)``."""
        return self.requests.status()

    @property
    def done(self) -> bool:
        """``True`` once every request is done or failed."""
        return self.requests.done

    @property
    def cost(self) -> float:
        """Processing units charged so far for the requests."""
        return self.requests.cost

    def wait(self, timeout: float | None = None, progress: bool = True) -> SeriesResults:
        """Block until every request is done or failed; returns ``self``."""
        self.requests.wait(timeout=timeout, progress=progress)
        return self

    def cancel(self) -> SeriesResults:
        """Stop creating requests (see :meth:`Results.cancel`); returns ``self``."""
        self.requests.cancel()
        return self

    def __repr__(self) -> str:
        inner = repr(self.requests).removeprefix("<xasync.Results: ").rstrip(">")
        return f"<xasync.SeriesResults: {len(self)} rows, requests: {inner}>"

    def _repr_html_(self) -> str:
        return self.requests._repr_html_()
