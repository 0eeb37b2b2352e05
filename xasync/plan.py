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
        Deterministic hash of the request (body without secrets; no row label or position).
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (used in delivery manifests to re-attach later)."""
        return {
            "token": self.token,
            "row_url": self.row_url,
            "grid": {
                "epsg": self.grid.epsg,
                "bbox": list(self.grid.bbox),
                "width": self.grid.width,
                "height": self.grid.height,
            },
            "outputs": [
                {
                    "identifier": o.identifier,
                    "bands": o.bands,
                    "dtype": o.dtype,
                    "nodata": o.nodata,
                    "extension": o.extension,
                }
                for o in self.outputs
            ],
            "label": jsonable(self.label),
            "time_range": list(self.time_range) if self.time_range else None,
            "mask_wkb": self.mask_wkb.hex() if self.mask_wkb is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReadPlan:
        """Inverse of :meth:`to_dict`."""
        g = d["grid"]
        return cls(
            token=d["token"],
            row_url=d["row_url"],
            grid=PixelGrid(
                int(g["epsg"]),
                (
                    float(g["bbox"][0]),
                    float(g["bbox"][1]),
                    float(g["bbox"][2]),
                    float(g["bbox"][3]),
                ),
                g["width"],
                g["height"],
            ),
            outputs=tuple(OutputPlan(**o) for o in d["outputs"]),
            label=d.get("label"),
            time_range=tuple(d["time_range"]) if d.get("time_range") else None,
            mask_wkb=bytes.fromhex(d["mask_wkb"]) if d.get("mask_wkb") else None,
        )


def jsonable(value: Any) -> Any:
    """Row labels as JSON: numpy scalars become Python scalars, anything else its string."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)
