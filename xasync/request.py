"""One row's Async request (:class:`RequestSpec`) and :func:`build_specs`, which validates everything
knowable before paying and builds one spec per GeoDataFrame row.

A spec holds no secret: delivery credentials are given only to :meth:`RequestSpec.body`, at the
moment the body is sent.
"""

from __future__ import annotations

import copy as copy_module
import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from xasync._contract import MAX_PIXELS_PER_SIDE as MAX_PX
from xasync._contract import USERDATA_IDENTIFIER
from xasync.canonical import fill_tokens, request_text
from xasync.errors import (
    CollectionError,
    CrsError,
    DeliveryUrlError,
    EvalscriptError,
    GeometryError,
    GridError,
    OptionError,
    ResponseError,
    TimeRangeError,
)
from xasync.evalscript import OutputSpec, script_and_outputs
from xasync.geometry import (
    check_geometries,
    check_labels,
    grid_of,
    project,
    round_geometries,
    target_epsgs,
)
from xasync.grid import PixelGrid, snapped_grids
from xasync.inputs import (
    BOUNDS_MODES,
    DELIVERY_KEYS,
    check_delivery,
    check_frame,
    data_items,
    parse_time_range,
)
from xasync.plan import OutputPlan, ReadPlan
from xasync.specrows import new_specs

logger = logging.getLogger(__name__)

__all__ = [
    "BOUNDS_MODES",
    "CollectionError",
    "CrsError",
    "DeliveryUrlError",
    "EvalscriptError",
    "GeometryError",
    "GridError",
    "OptionError",
    "RequestSpec",
    "ResponseError",
    "TimeRangeError",
    "build_specs",
    "parse_time_range",
]


def json_label(value: Any) -> Any:
    """A row label as JSON: numpy scalars become Python scalars, tuples lists, anything else
    its string."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [json_label(v) for v in value]
    return str(value)


@functools.lru_cache(maxsize=256)
def output_plans(outputs: tuple[OutputSpec, ...], responses: tuple[str, ...]) -> tuple:
    """The requested outputs as :class:`OutputPlan` (cached: the rows of a call share them)."""
    by_id = {o.id: o for o in outputs}
    return tuple(OutputPlan(r, by_id[r].bands, by_id[r].dtype, by_id[r].nodata) for r in responses)


@dataclass(frozen=True, eq=False)
class RequestSpec:
    """The Async request of one GeoDataFrame row, free of secrets.

    Attributes
    ----------
    label : object
        The row label (JSON-able; numpy scalars are converted).
    position : int
        The row's position in the GeoDataFrame.
    geometry_wkb : bytes
        The row geometry in the request CRS (``grid.epsg``), WKB.
    grid : PixelGrid
        The exact grid of the delivered files; its bbox and size are sent.
    bounds_mode : str
        ``"geometry"``: bbox + geometry are sent (pixels outside the geometry come out 0);
        ``"bbox"``: only the bbox.
    evalscript, evalscript_ref : str or None
        The script source, or its ``s3://`` URL (sent as ``evalscriptReference``).
    data : tuple of dict
        The ``input.data`` items, time filter included.
    time : tuple of str
        ``(from, to)`` as ``YYYY-MM-DDTHH:MM:SSZ``.
    outputs : tuple of OutputSpec
        All outputs of the evalscript's ``setup()``.
    responses : tuple of str
        The identifiers requested (GeoTIFF each).
    delivery_root : str
        ``s3://bucket/prefix`` under which each request gets its own folder (:attr:`row_url`).
    mask : bool
        Whether readers should mask pixels outside the geometry.
    evalscript_digest : str or None
        For an ``evalscriptReference``: sha256 of the referenced script's content, read at
        ``process()`` time, so an edited script is a new request.
    userdata : bool
        Also request ``userdata.json`` (an ``application/json`` response); the time series of
        :mod:`xasync.timeseries` read the scene dates from it.

    Notes
    -----
    Identity is what is bought: :attr:`token` hashes the canonical body (no secrets, no
    delivery URL) and the referenced script's digest. ``label`` and ``position`` are row
    metadata for :class:`~xasync.results.Results` and play no part in :attr:`token`, equality
    or ``dask.base.tokenize``: rows with the same request share it, and re-ordering, filtering
    or re-indexing a GeoDataFrame changes no token. Geometry coordinates are rounded by
    :func:`build_specs` (see :func:`xasync.geometry.round_decimals`) so reprojection noise is
    no new request.

    """

    label: Any
    position: int
    geometry_wkb: bytes = field(repr=False)
    grid: PixelGrid
    bounds_mode: str
    evalscript: str | None = field(repr=False)
    evalscript_ref: str | None
    data: tuple[dict[str, Any], ...]
    time: tuple[str, str]
    outputs: tuple[OutputSpec, ...]
    responses: tuple[str, ...]
    delivery_root: str
    mask: bool = False
    evalscript_digest: str | None = None
    userdata: bool = False  # time series: also request userdata.json (xasync.timeseries)

    @property
    def geometry(self) -> dict[str, Any]:
        """The row geometry as a GeoJSON dict, in the request CRS."""
        import shapely

        return json.loads(shapely.to_geojson(shapely.from_wkb(self.geometry_wkb)))

    def canonical_body(self, *, copy: bool = True) -> dict[str, Any]:
        """The request body without ``output.delivery`` (no credentials, no row URL).

        This is what :attr:`token` hashes. It is computed once per spec; with ``copy=False``
        the shared dict itself is returned (do not modify it).
        """
        return copy_module.deepcopy(self._canonical) if copy else self._canonical

    @cached_property
    def _canonical(self) -> dict[str, Any]:
        g = self.grid
        bounds: dict[str, Any] = {"bbox": list(g.bbox), "properties": {"crs": g.crs_url}}
        if self.bounds_mode == "geometry":
            bounds["geometry"] = self.geometry
        body: dict[str, Any] = {
            "input": {"bounds": bounds, "data": copy_module.deepcopy(list(self.data))},
            "output": {
                "width": g.width,
                "height": g.height,
                "responses": [
                    {"identifier": r, "format": {"type": "image/tiff"}} for r in self.responses
                ],
            },
        }
        if self.userdata:
            body["output"]["responses"].append(
                {"identifier": USERDATA_IDENTIFIER, "format": {"type": "application/json"}}
            )
        if self.evalscript_ref is not None:
            body["evalscriptReference"] = {"s3": {"url": self.evalscript_ref}}
        else:
            body["evalscript"] = self.evalscript
        return body

    @cached_property
    def token(self) -> str:
        """sha256 hex of the canonical JSON of the body and the referenced script's digest.

        Neither the row label nor its position enters it (see the class notes).
        """
        return hashlib.sha256(request_text(self).encode()).hexdigest()

    @cached_property
    def row_url(self) -> str:
        """``<delivery_root>/<token[:24]>``: the request's delivery folder.

        The same for every row (of any call) that asks for the same request. The service adds ``<REQUEST_ID>/<identifier>.tif`` under it.
        """
        return f"{self.delivery_root}/{self.token[:24]}"

    def body(self, delivery: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The full Async API body.

        Parameters
        ----------
        delivery : mapping, optional
            Extras of ``output.delivery.s3``: ``accessKey``/``secretAccessKey`` and/or
            ``iamRoleARN``, ``region``; of ``output.delivery.gs`` (a ``gs://`` delivery):
            ``credentials``. The same S3 credentials are given to
            ``evalscriptReference.s3`` when the script is a reference. The URL is always
            :attr:`row_url` (plain, so the service appends ``<REQUEST_ID>/<OUTPUT>``).

        Raises
        ------
        DeliveryUrlError
            Unknown keys in ``delivery``.

        """
        extras = dict(delivery or {})
        unknown = set(extras) - DELIVERY_KEYS
        if unknown:
            raise DeliveryUrlError(
                f"unknown delivery keys {sorted(unknown)}; allowed: {sorted(DELIVERY_KEYS)}",
            )
        body = self.canonical_body()
        scheme = "gs" if self.row_url.startswith("gs://") else "s3"
        body["output"]["delivery"] = {scheme: {"url": self.row_url, **extras}}
        if self.evalscript_ref is not None and scheme == "s3":
            body["evalscriptReference"]["s3"].update(extras)
        return body

    def read_plan(self) -> ReadPlan:
        """The :class:`~xasync.plan.ReadPlan` of this row (requested outputs, in request order)."""
        return ReadPlan(
            token=self.token,
            row_url=self.row_url,
            grid=self.grid,
            outputs=output_plans(self.outputs, self.responses),
            label=json_label(self.label),
            time_range=self.time,
            mask_wkb=self.geometry_wkb if self.mask else None,
        )

    def __dask_tokenize__(self) -> tuple:
        return ("xasync.RequestSpec", self.token, self.delivery_root, self.mask)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestSpec):
            return NotImplemented
        return (self.token, self.delivery_root, self.mask) == (
            other.token,
            other.delivery_root,
            other.mask,
        )

    def __hash__(self) -> int:
        return hash((self.token, self.delivery_root, self.mask))


def build_specs(
    gdf: Any,
    evalscript: str,
    *,
    data: Any = "sentinel-2-l2a",
    time: Any = None,
    resolution: float | Sequence[float] | None = None,
    size: Sequence[int] | None = None,
    crs: Any = None,
    delivery: str,
    outputs: Mapping[str, Mapping[str, Any] | int] | None = None,
    responses: Sequence[str] | None = None,
    bounds: str = "geometry",
    mask: bool = False,
    storage_options: dict[str, Any] | None = None,
    tiled: bool = False,
) -> list[RequestSpec]:
    """Validate the inputs and build one :class:`RequestSpec` per GeoDataFrame row.

    Everything that can be known before paying is checked here; each problem is a
    :class:`~xasync.errors.ValidationError` subclass naming it (and the row, when it is a row's).

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Polygon/MultiPolygon rows with a CRS.
    evalscript : str
        Evalscript V3 source, or the ``s3://`` URL of one (sent as ``evalscriptReference``; read
        once with ``storage_options`` unless ``outputs`` covers every response).
    data : str, dict or list
        Collection type(s) or full ``input.data`` dicts.
    time : tuple or str or date
        ``(start, end)`` or one day; see :func:`parse_time_range`. A data item's own
        ``dataFilter.timeRange`` wins; ``time`` may be omitted when every item sets one.
    resolution, size
        Exactly one: pixel size in CRS units (grid snapped outward, see
        :meth:`PixelGrid.from_resolution`), or ``(width, height)`` over the exact bounds.
    crs : optional
        None: the GeoDataFrame's CRS; ``"utm"``: each row's UTM zone; anything pyproj accepts.
    delivery : str
        ``s3://bucket/prefix``; row ``i`` is delivered under ``<delivery>/<token[:24]>``.
    outputs : mapping, optional
        Output overrides, see :func:`xasync.evalscript.parse_outputs`.
    responses : sequence of str, optional
        Output ids to request (default: every output of ``setup()``).
    bounds : {"geometry", "bbox"}
        Send bbox + geometry (pixels outside are 0) or the bbox only.
    mask : bool
        Mask pixels outside the geometry when reading.
    storage_options : dict, optional
        fsspec options to read an evalscript reference.
    tiled : bool
        With ``resolution``, let a row's grid exceed 10000 px a side (the planner tiles it,
        see :func:`xasync.planner.row_grid`).

    Returns
    -------
    list of RequestSpec

    """
    import geopandas as gpd
    import shapely

    from xasync.planner import MAX_ROW_PX, row_grid

    check_frame(gdf, resolution, size, bounds)
    root = check_delivery(delivery)
    items, time_range = data_items(data, time)
    ref, digest, outs, wanted = script_and_outputs(evalscript, outputs, responses, storage_options)
    gs = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else gdf
    labels = check_labels(gdf.index)
    geoms = np.asarray(gs.array, dtype=object)
    check_geometries(geoms, labels)
    epsgs = target_epsgs(gs, crs)
    projected = project(gs, epsgs, resolution, labels)
    rounded = round_geometries(projected, resolution, size)
    boxes, wkbs = shapely.bounds(rounded), shapely.to_wkb(rounded)
    grids: list[Any] = [None] * len(wkbs)
    if resolution is not None:  # vectorised; rows it cannot build are built below (or refused)
        grids = snapped_grids(boxes, epsgs, resolution, MAX_ROW_PX if tiled else MAX_PX)
    for i in [i for i, g in enumerate(grids) if g is None]:
        try:
            if tiled and resolution is not None:
                grids[i] = row_grid(boxes[i], int(epsgs[i]), resolution)
            else:
                grids[i] = grid_of(boxes[i], int(epsgs[i]), resolution, size)
        except GridError as exc:
            raise type(exc)(f"row {labels[i]!r}: {exc}") from None
    shared = {
        "bounds_mode": bounds,
        "evalscript": None if ref else evalscript,
        "evalscript_ref": ref,
        "data": items,
        "time": time_range,
        "outputs": outs,
        "responses": wanted,
        "delivery_root": root,
        "mask": bool(mask),
        "evalscript_digest": digest,
    }
    specs = new_specs(shared, labels, wkbs.tolist(), grids)
    fill_tokens(specs, rounded)  # every row needs its token: geometries serialised at once
    logger.debug("built %d request specs (%d CRS groups)", len(specs), len(np.unique(epsgs)))
    return specs
