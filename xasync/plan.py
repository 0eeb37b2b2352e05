"""What the lazy side needs to know about one row: the read plan.

A ``ReadPlan`` is small, frozen and free of secrets: it is what enters the dask graph. It is built
from a :class:`xasync.request.RequestSpec` (``spec.read_plan()``) or from a delivery manifest when
re-attaching to earlier results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xasync.grid import PixelGrid


@dataclass(frozen=True)
class OutputPlan:
    """One raster response of a request: its identifier, band count and dtype."""

    identifier: str
    bands: int
    dtype: str
    nodata: float | None = None
    extension: str = "tif"


@dataclass(frozen=True)
class ReadPlan:
    """Everything needed to build and read the lazy Dataset of one request.

    Attributes
    ----------
    token : str
        Deterministic hash of the request (body without secrets, plus the row's label/position).
    row_url : str
        ``s3://bucket/prefix/<token>``: the delivery URL sent to the service for this row; the
        service writes ``<row_url>/<REQUEST_ID>/<identifier>.tif``.
    grid : PixelGrid
        The exact grid of the delivered files.
    outputs : tuple of OutputPlan
        The raster responses, in request order.
    label : object
        The GeoDataFrame row label (JSON-able scalar).
    time_range : tuple of str
        ``(from, to)`` as RFC 3339 strings.
    mask_wkb : bytes or None
        The geometry in the grid's CRS (WKB), when pixels outside it are to be masked.
    """

    token: str
    row_url: str
    grid: PixelGrid
    outputs: tuple[OutputPlan, ...]
    label: Any = None
    time_range: tuple[str, str] | None = None
    mask_wkb: bytes | None = None

    def __dask_tokenize__(self) -> tuple:
        return ("xasync.ReadPlan", self.token, self.row_url, self.mask_wkb is not None)
