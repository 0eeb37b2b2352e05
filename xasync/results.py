"""What ``process`` and ``open_delivery`` return: lazy Datasets aligned with the rows, and state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import pandas as pd
import xarray as xr

from xasync.errors import DeliveryTimeout
from xasync.jobs import Job, RowStatus
from xasync.progress import wait_with_progress

STATUS_COLUMNS = ["request_id", "state", "submitted", "finished", "cost_pu", "error", "reused"]


class Results(Sequence):
    """Lazy Datasets, one per row, and the state of their requests.

    ``results[i]`` is the i-th row's :class:`xarray.Dataset` (positional, like ``gdf.iloc``);
    ``results.datasets`` is a :class:`pandas.Series` indexed like the GeoDataFrame, so
    ``results.datasets.loc[label]`` selects by label. Submission continues in the background;
    computing a Dataset waits for its delivery. Each Dataset is assembled on first access (its
    coordinates, CRS and dtypes need no network), so a call on many rows returns at once.
    """

    def __init__(
        self,
        datasets: Sequence[xr.Dataset | None],
        index: pd.Index,
        job: Job,
        *,
        delivery: str,
        build: Callable[[int], xr.Dataset] | None = None,
    ) -> None:
        if len(datasets) != len(index) or len(job) != len(index):
            raise ValueError("datasets, index and job must have one entry per row")
        if build is None and any(ds is None for ds in datasets):
            raise ValueError("datasets left to build need a build function")
        self._datasets: list[xr.Dataset | None] = list(datasets)
        self._build = build
        self._lock = threading.Lock()
        self._index = index
        self._job = job
        self.delivery = delivery

    @classmethod
    def deferred(
        cls, n: int, build: Callable[[int], xr.Dataset], index: pd.Index, job: Job, *, delivery: str
    ) -> Results:
        """Results whose Datasets are built on first access (``build(i)``), then kept."""
        return cls([None] * n, index, job, delivery=delivery, build=build)

    # -- sequence ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._datasets)

    def _dataset(self, i: int) -> xr.Dataset:
        ds = self._datasets[i]
        if ds is None:
            with self._lock:
                ds = self._datasets[i]
                if ds is None:
                    assert self._build is not None
                    ds = self._datasets[i] = self._build(i)
        _apply_row_attrs(ds, self._job.rows[i])
        return ds

    @overload
    def __getitem__(self, i: int) -> xr.Dataset: ...
    @overload
    def __getitem__(self, i: slice) -> list[xr.Dataset]: ...
    def __getitem__(self, i: int | slice) -> xr.Dataset | list[xr.Dataset]:
        if isinstance(i, slice):
            return [self._dataset(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} out of range for {len(self)} rows")
        return self._dataset(i)

    def __iter__(self) -> Iterator[xr.Dataset]:
        return (self._dataset(i) for i in range(len(self)))

    @property
    def datasets(self) -> pd.Series:
        """The Datasets as a Series indexed like the GeoDataFrame."""
        values = [self._dataset(i) for i in range(len(self))]
        return pd.Series(values, index=self._index, dtype=object, name="dataset")

    @property
    def job(self) -> Job:
        """The live state tracker (advanced use)."""
        return self._job

    # -- state ---------------------------------------------------------------------------
    def status(self) -> pd.DataFrame:
        """One row per request: request_id, state, submitted, finished, cost_pu, error, reused."""
        self._refresh_attrs()
        rows = self._job.snapshot()
        frame = pd.DataFrame(
            [
                {
                    "request_id": r.request_id,
                    "state": r.state.value,
                    "submitted": r.submitted,
                    "finished": r.finished,
                    "cost_pu": r.cost_pu,
                    "error": r.error,
                    "reused": r.reused,
                }
                for r in rows
            ],
            columns=STATUS_COLUMNS,
            index=self._index,
        )
        for col in ("submitted", "finished"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        frame["cost_pu"] = frame["cost_pu"].astype(float)
        return frame

    @property
    def done(self) -> bool:
        """``True`` once every request is done or failed."""
        return self._job.finished

    @property
    def cost(self) -> float:
        """Processing units charged so far, as reported in the delivered request copies."""
        return float(sum(r.cost_pu or 0.0 for r in self._job.snapshot()))

    def wait(self, timeout: float | None = None, progress: bool = True) -> Results:
        """Block until every request is done or failed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; :class:`xasync.DeliveryTimeout` is raised after it.
        progress : bool
            Show a ``tqdm.auto`` progress bar.

        Returns
        -------
        Results
            ``self``, so that ``results.wait().status()`` reads well.

        """
        ok = wait_with_progress(self._job, timeout=timeout, progress=progress, desc="xasync")
        if self._job.fatal is not None:
            raise self._job.fatal
        if not ok:
            counts = dict(self._job.counts())
            raise DeliveryTimeout(f"not all requests finished within {timeout:g} s: {counts}")
        self._refresh_attrs()
        return self

    def cancel(self) -> Results:
        """Stop submitting: rows not yet created end ``failed`` ("cancelled") and cost nothing.

        Requests already accepted by the service keep running there (they are paid for) and are
        still followed to their delivery. Returns ``self``.
        """
        self._job.cancel()
        return self

    # -- display -------------------------------------------------------------------------
    def __repr__(self) -> str:
        counts = self._job.counts()
        states = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        return f"<xasync.Results: {len(self)} rows ({states}) delivery={self.delivery}>"

    def _repr_html_(self) -> str:
        return f"<p>{_html_escape(repr(self))}</p>" + self.status().to_html()

    # -- internals -----------------------------------------------------------------------
    def _refresh_attrs(self) -> None:
        """Copy request ids, states and costs of finished rows into the Datasets' attrs."""
        for ds, row in zip(self._datasets, self._job.snapshot()):
            if ds is not None:
                _apply_row_attrs(ds, row)


def _apply_row_attrs(ds: xr.Dataset, row: RowStatus) -> None:
    attrs: dict[str, Any] = {"state": row.state.value}
    if row.request_id:
        attrs["request_id"] = row.request_id
    if row.cost_pu is not None:
        attrs["cost_pu"] = float(row.cost_pu)
    if row.error:
        attrs["error"] = row.error
    ds.attrs.update(attrs)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
