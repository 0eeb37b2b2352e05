"""What ``process`` and ``open_delivery`` return: lazy Datasets aligned with the rows, and state.

The state of every row is read from :class:`xasync.jobs.Job`, a view over the process's one
store of request outcomes (:mod:`xasync.ledger`). Nothing here writes into the Datasets: their
attrs are those :mod:`xasync.lazy` gave them (the same for neighbouring rows but for the row's
own identity), so ``xr.combine_by_coords`` of neighbouring rows works.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
import xarray as xr

from xasync.errors import DeliveryTimeout
from xasync.jobs import Job
from xasync.progress import wait_with_progress

__all__ = ["STATUS_COLUMNS", "Results"]

#: Datasets assembled together when iterating (see :meth:`Results._build_many`).
BUILD_BATCH = 1000

#: Datasets built in one batch from which the batch ends with one collection of the young
#: generations (see :meth:`Results._build_many`); fewer are left to the automatic collector.
COLLECT_AFTER = 256

#: Columns of :meth:`Results.status`.
STATUS_COLUMNS = [
    "request_id",
    "state",
    "submitted",
    "finished",
    "cost_pu",
    "estimated_pu",
    "requests",
    "error",
    "reused",
]


class Results(Sequence):
    """Lazy Datasets, one per row, and the state of their requests.

    Indexing
    --------
    * ``results[i]`` with an ``int``: the i-th row's :class:`xarray.Dataset` (positional, like
      ``gdf.iloc``; negative counts from the end).
    * ``results[label]`` with any other hashable (a ``str``, a ``pd.Timestamp``, a tuple of a
      ``MultiIndex``...): the row(s) with that label, like ``gdf.loc``. One row gives a Dataset;
      a label shared by several rows (or a partial ``MultiIndex`` key) gives a list of them.
      An unknown label raises :class:`KeyError`.
    * ``results[a:b]``: a list; integer (or None) bounds are positions, other bounds labels
      (both ends included, as with ``.loc``).

    ``results.datasets`` is a :class:`pandas.Series` indexed like the GeoDataFrame. Submission
    continues in the background; computing a Dataset waits for its delivery. Each Dataset is
    assembled on first access (its coordinates, CRS and dtypes need no network), so a call on
    many rows returns at once.
    """

    def __init__(
        self,
        datasets: Sequence[xr.Dataset | None],
        index: pd.Index,
        job: Job,
        *,
        delivery: str,
        build: Callable[[int], xr.Dataset] | None = None,
        estimated_pu: Sequence[float] | None = None,
    ) -> None:
        if len(datasets) != len(index) or len(job) != len(index):
            raise ValueError("datasets, index and job must have one entry per row")
        if estimated_pu is not None and len(estimated_pu) != len(index):
            raise ValueError("estimated_pu must have one entry per row")
        if build is None and any(ds is None for ds in datasets):
            raise ValueError("datasets left to build need a build function")
        self._datasets: list[xr.Dataset | None] = list(datasets)
        self._build = build
        self._lock = threading.Lock()
        self._index = index
        self._job = job
        self._estimated = None if estimated_pu is None else [float(v) for v in estimated_pu]
        self.delivery = delivery

    @classmethod
    def deferred(
        cls,
        n: int,
        build: Callable[[int], xr.Dataset],
        index: pd.Index,
        job: Job,
        *,
        delivery: str,
        estimated_pu: Sequence[float] | None = None,
    ) -> Results:
        """Results whose Datasets are built on first access (``build(i)``), then kept.

        ``estimated_pu`` (one value per row, e.g. the column of :func:`xasync.estimate`) is shown
        beside ``cost_pu`` in :meth:`status`.
        """
        return cls(
            [None] * n, index, job, delivery=delivery, build=build, estimated_pu=estimated_pu
        )

    # -- sequence ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._datasets)

    def _build_many(self, positions: Sequence[int]) -> None:
        """Build the Datasets at ``positions`` not built yet, with the cyclic GC paused.

        Assembling a Dataset allocates many small objects and no garbage: at 100,000 rows the
        collector's passes over the growing heap were about 30 % of the time. The pause covers
        only this loop (never the user's code) and restores the collector's state. A build that
        fails is left for :meth:`_dataset`, which raises at that row's turn.
        """
        enabled = gc.isenabled()
        gc.disable()
        built = 0
        try:
            for i in positions:
                if self._datasets[i] is None:
                    try:
                        self._dataset(i)
                    except Exception:  # raised again, in order, by the caller's _dataset(i)
                        return
                    built += 1
        finally:
            if enabled:
                # The batch's objects all survive (they are kept): one pass over the young
                # generations moves them to the oldest at once, instead of an automatic pass
                # over the youngest now and another over the middle one (ten batches) later.
                if built >= COLLECT_AFTER:
                    gc.collect(1)
                gc.enable()

    def _in_batches(self, positions: Sequence[int]) -> Iterator[xr.Dataset]:
        for start in range(0, len(positions), BUILD_BATCH):
            batch = positions[start : start + BUILD_BATCH]
            self._build_many(batch)
            yield from (self._dataset(i) for i in batch)

    def _dataset(self, i: int) -> xr.Dataset:
        ds = self._datasets[i]
        if ds is None:
            with self._lock:
                ds = self._datasets[i]
                if ds is None:
                    assert self._build is not None
                    ds = self._datasets[i] = self._build(i)
        return ds

    @overload
    def __getitem__(self, key: int) -> xr.Dataset: ...
    @overload
    def __getitem__(self, key: slice) -> list[xr.Dataset]: ...
    @overload
    def __getitem__(self, key: Hashable) -> xr.Dataset | list[xr.Dataset]: ...
    def __getitem__(self, key: Any) -> xr.Dataset | list[xr.Dataset]:
        if isinstance(key, slice):
            return [self._dataset(j) for j in self._slice_positions(key)]
        if _is_position(key):
            i = int(key)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"row {int(key)} out of range for {len(self)} rows")
            return self._dataset(i)
        where = self.positions(key)
        if isinstance(where, int):
            return self._dataset(where)
        return [self._dataset(j) for j in where]

    def positions(self, label: Hashable) -> int | list[int]:
        """The position of the row labelled ``label`` (a list when several rows match).

        Raises
        ------
        KeyError
            No row has this label.
        TypeError
            ``label`` is not hashable.
        """
        try:
            hash(label)
        except TypeError:
            raise TypeError(
                f"rows are selected by position (int), label or slice, not {type(label).__name__}"
            ) from None
        try:
            where = self._index.get_loc(label)
        except (KeyError, TypeError, ValueError):
            raise KeyError(_unknown_label(label, self._index)) from None
        if isinstance(where, (int, np.integer)):
            return int(where)
        if isinstance(where, slice):
            return list(range(*where.indices(len(self))))
        return [int(j) for j in np.flatnonzero(where)]

    def _slice_positions(self, key: slice) -> range:
        bounds = (key.start, key.stop)
        if all(b is None or _is_position(b) for b in bounds):
            return range(*key.indices(len(self)))
        try:
            where = self._index.slice_indexer(key.start, key.stop, key.step)
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyError(
                f"cannot slice the rows by labels {key.start!r}:{key.stop!r}: {exc}"
            ) from None
        return range(*where.indices(len(self)))

    def __iter__(self) -> Iterator[xr.Dataset]:
        return self._in_batches(range(len(self)))

    @property
    def labels(self) -> pd.Index:
        """The row labels (those of the GeoDataFrame)."""
        return self._index

    @property
    def datasets(self) -> pd.Series:
        """The Datasets as a Series indexed like the GeoDataFrame."""
        values = list(self._in_batches(range(len(self))))
        return pd.Series(values, index=self._index, dtype=object, name="dataset")

    @property
    def job(self) -> Job:
        """The live state tracker (advanced use)."""
        return self._job

    # -- state ---------------------------------------------------------------------------
    def status(self) -> pd.DataFrame:
        """The state of every row's request, indexed like the GeoDataFrame.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`STATUS_COLUMNS`: ``request_id``; ``state`` (``queued``, ``claimed``,
            ``running``, ``done``, ``failed``); ``submitted`` and ``finished`` (UTC);
            ``cost_pu``, the row's share of what its request was charged (rows sharing one
            request split it, so the column sums to the charge; 0 for a request bought by an
            earlier call); ``requests``, the request (its delivery folder) the row uses, the
            same for rows that share one; ``error``; ``reused`` (delivered before this call).
        """
        rows = self._job.snapshot()
        estimated = self._estimated or [float("nan")] * len(rows)
        frame = pd.DataFrame(
            [
                {
                    "request_id": r.request_id,
                    "state": r.state.value,
                    "submitted": r.submitted,
                    "finished": r.finished,
                    "cost_pu": r.cost_pu,
                    "estimated_pu": estimate,
                    "requests": r.row_url,
                    "error": r.error,
                    "reused": r.reused,
                }
                for r, estimate in zip(rows, estimated)
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
        """Processing units charged so far for this call's requests, each counted once."""
        return self._job.total_cost()

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


def _is_position(key: Any) -> bool:
    """An int (or numpy integer) but not a bool: a position."""
    return isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_))


def _unknown_label(label: Hashable, index: pd.Index) -> str:
    sample = ", ".join(repr(v) for v in index[:5]) + (", ..." if len(index) > 5 else "")
    return f"no row labelled {label!r} (labels: {sample}; use an int for a position)"


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
