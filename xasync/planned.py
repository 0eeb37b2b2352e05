"""The planner applied to request specs: which requests to buy, and where each row reads.

:func:`plan_specs` turns one :class:`~xasync.request.RequestSpec` per row into the distinct
requests to buy (tiles of big rows, packs of small ones, or the rows' own requests) and, per
row, the :class:`Source` windows its Dataset reads. A tile's or a pack's request is the row's
request with another grid and geometry, so its identity (the hash of its body) says what it
buys: the same rows give the same requests, and a delivered tile or pack is never bought again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xasync.canonical import fill_tokens
from xasync.cost import area_factor, async_pu
from xasync.grid import PixelGrid
from xasync.planestimate import estimate_planned
from xasync.plangeometry import pack_geometries, tile_geometry
from xasync.planner import (
    DEFAULT_MAX_REQUEST_PX,
    DEFAULT_PACK_MAX_PX,
    CostFunction,
    PackItem,
    Plan,
    Window,
    default_cost,
    plan_rows,
)

if TYPE_CHECKING:
    from xasync.bought_alone import Bought
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = [
    "PlannedSpecs",
    "Source",
    "estimate_planned",
    "pack_key",
    "plan_specs",
    "spec_cost_function",
]


@dataclass(frozen=True)
class Source:
    """A window of one request's delivery that fills a window of a row's grid.

    Small, frozen and free of secrets: it enters the dask graph.

    Attributes
    ----------
    token, row_url : str
        The request's identity and delivery folder.
    grid : PixelGrid
        The request's grid (the delivered files' grid).
    window : Window
        ``(row_off, col_off, height, width)`` read in the request's grid.
    target : Window
        Where it goes in the row's grid (same height and width).
    name : str
        How errors name it: ``"tile (r, c)"``, ``"pack of n rows"`` or ``"request"``.

    """

    token: str
    row_url: str
    grid: PixelGrid
    window: Window
    target: Window
    name: str = "request"


@dataclass(frozen=True)
class PlannedSpecs:
    """The requests of a call and each row's sources.

    Attributes
    ----------
    requests : list of RequestSpec
        The distinct requests to buy, in plan order.
    sources : list of tuple of Source
        Per row, the windows that cover its grid (row-major).
    row_requests : list of tuple of int
        Per row, the indices in :attr:`requests` it needs.

    """

    requests: list[RequestSpec]
    sources: list[tuple[Source, ...]]
    row_requests: list[tuple[int, ...]]


def pack_key(spec: RequestSpec) -> str:
    """A digest of everything but the bounds that makes a spec's body (and where it goes).

    Specs with the same key differ only by their bbox, geometry and size: they can share one
    request.
    """
    body = spec.canonical_body()
    body["input"].pop("bounds", None)
    body["output"].pop("width", None)
    body["output"].pop("height", None)
    doc = {
        "body": body,
        "crs": spec.grid.epsg,
        "bounds_mode": spec.bounds_mode,
        "root": spec.delivery_root,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _pack_keys(specs: Sequence[RequestSpec]) -> list[str]:
    """:func:`pack_key` of each spec, computed once per distinct script, data, time, outputs,
    CRS, bounds mode and root (the specs of one call share those objects)."""
    cache: dict[tuple, tuple[str, Any]] = {}
    out = []
    for s in specs:
        ident = (
            id(s.data),
            s.evalscript,
            s.evalscript_ref,
            getattr(s, "evalscript_digest", None),
            s.time,
            s.responses,
            s.grid.epsg,
            s.bounds_mode,
            s.delivery_root,
        )
        if ident not in cache:
            cache[ident] = (pack_key(s), s.data)  # holding data keeps its id unique
        out.append(cache[ident][0])
    return out


def spec_cost_function(
    specs: Sequence[RequestSpec],
    keys: Sequence[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> CostFunction:
    """``cost(key, width, height)`` from the published rules and each key's script and data.

    The factors of one spec per key are computed once (:mod:`xasync.estimate`); the area then
    varies. A script whose ``setup()`` cannot run locally is priced as 3 input bands (the
    decision to pack rests mostly on the 10 PU minimum, which does not depend on bands).
    """
    from xasync.estimate import request_costs
    from xasync.evalscript import EvalscriptError

    per_key: dict[str, float] = {}
    for spec, key in zip(specs, keys, strict=True):
        if key in per_key:
            continue
        try:
            (f,) = request_costs([spec], storage_options=storage_options).values()
            per_key[key] = f.bands * f.format * f.samples * f.fusion * f.sentinel1
        except EvalscriptError:
            logger.debug("no cost factors for a script; packing with the area rule only")
            per_key[key] = 1.0

    def cost(key: str, width: int, height: int) -> float:
        if key not in per_key:
            return default_cost(key, width, height)
        return async_pu(area_factor(width, height) * per_key[key], width, height)

    return cost


def plan_specs(
    specs: Sequence[RequestSpec],
    *,
    max_request_px: int = DEFAULT_MAX_REQUEST_PX,
    pack: bool = False,
    pack_max_px: int = DEFAULT_PACK_MAX_PX,
    cost: CostFunction | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keep_alone: Collection[int] = (),
) -> PlannedSpecs:
    """The requests to buy for ``specs`` (one per row) and the sources of each row.

    Parameters
    ----------
    specs : sequence of RequestSpec
        One per row, as :func:`xasync.request.build_specs` returns them (a row's grid may be
        larger than ``max_request_px``).
    max_request_px, pack, pack_max_px
        See :func:`xasync.planner.plan_rows`.
    cost : callable, optional
        ``cost(key, width, height)``; default :func:`spec_cost_function` (only used to pack).
    storage_options : dict, optional
        To read an ``s3://`` evalscript reference when pricing packs.
    keep_alone : collection of int
        Rows never packed (their own request was bought before:
        :func:`xasync.bought_alone.bought_alone`).

    Returns
    -------
    PlannedSpecs

    """
    specs = list(specs)
    keys = _pack_keys(specs) if pack else [""] * len(specs)
    for i in keep_alone:  # a key of its own: a family of one, planned as the row's request
        keys[i] = f"alone:{specs[i].token}"
    items = [PackItem(k, s.grid, s.geometry_wkb) for k, s in zip(keys, specs, strict=True)]
    if pack and cost is None:
        cost = spec_cost_function(specs, keys, storage_options=storage_options)
    plan = plan_rows(
        items,
        max_request_px=max_request_px,
        pack=pack,
        pack_max_px=pack_max_px,
        cost=cost or default_cost,
    )
    requests = _request_specs(specs, plan)
    fill_tokens(requests, keep_texts=False)  # tiles' and packs' geometries at once
    sources = _row_sources(plan, requests)
    row_requests = [
        (parts[0].request,) if len(parts) == 1 else tuple(p.request for p in parts)
        for parts in plan.parts
    ]
    logger.debug("%d rows -> %d requests", len(specs), len(requests))
    return PlannedSpecs(requests, sources, row_requests)


def _request_specs(specs: Sequence[RequestSpec], plan: Plan) -> list[RequestSpec]:
    """The spec of each planned request: a row's own, or a row's with a tile's or a pack's
    grid and geometry (packs' geometries built at once)."""
    packs = [k for k, req in enumerate(plan.requests) if req.kind == "pack"]
    members = [[specs[r].geometry_wkb for r in plan.requests[k].rows] for k in packs]
    pack_wkb = dict(zip(packs, pack_geometries(members), strict=True))
    requests: list[RequestSpec] = []
    for k, req in enumerate(plan.requests):
        first = specs[req.rows[0]]
        if req.kind == "row":
            requests.append(first)
            continue
        if req.kind == "tile":
            geometry = tile_geometry(first.geometry_wkb, req.grid)
        else:
            geometry = pack_wkb[k]
        requests.append(dataclasses.replace(first, grid=req.grid, geometry_wkb=geometry))
    return requests


def _new_source(
    token: str, row_url: str, grid: PixelGrid, window: Window, target: Window, name: str
) -> Source:
    """``Source(token, row_url, grid, window, target, name)`` without the frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` a field, about 1 us a row); the same object
    (tests compare both)."""
    source = object.__new__(Source)
    source.__dict__.update(
        token=token, row_url=row_url, grid=grid, window=window, target=target, name=name
    )
    return source


def _row_sources(plan: Plan, requests: Sequence[RequestSpec]) -> list[tuple[Source, ...]]:
    """Per row, the :class:`Source` of each of its parts."""
    of_request = []
    for req, spec in zip(plan.requests, requests, strict=True):
        if req.kind == "tile":
            name = f"tile {req.tile}"
        else:
            name = f"pack of {len(req.rows)} rows" if req.kind == "pack" else "request"
        of_request.append((spec.token, spec.row_url, spec.grid, name))
    sources = []
    for parts in plan.parts:
        row = []
        for part in parts:
            token, url, grid, name = of_request[part.request]
            row.append(_new_source(token, url, grid, part.source, part.target, name))
        sources.append(tuple(row))
    return sources


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (planning makes a few objects per row and frees
    none: its passes over a heap of 100,000 rows were a third of the planning time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plan_call(
    specs: Sequence[RequestSpec],
    *,
    max_request_px: int = DEFAULT_MAX_REQUEST_PX,
    pack: bool = False,
    pack_max_px: int = DEFAULT_PACK_MAX_PX,
    storage_options: Mapping[str, Any] | None = None,
    bought: Bought | None = None,
) -> PlannedSpecs | None:
    """The plan of a ``process``/``estimate`` call, or None when each row is its own request.

    With ``bought`` (what exists under the delivery), rows bought alone before are planned
    alone unless their pack exists too (:func:`xasync.bought_alone.keep_alone`).
    """
    from xasync.bought_alone import keep_alone
    from xasync.planner import check_plan_options

    max_request_px, pack, pack_max_px = check_plan_options(max_request_px, pack, pack_max_px)
    if not pack and all(max(s.grid.width, s.grid.height) <= max_request_px for s in specs):
        return None
    kw: dict[str, Any] = {"max_request_px": max_request_px, "pack": pack}
    kw.update(pack_max_px=pack_max_px, storage_options=storage_options)
    with _gc_paused():
        planned = plan_specs(specs, **kw)
        keep = keep_alone(specs, planned, bought) if pack and bought is not None else None
        return plan_specs(specs, keep_alone=keep, **kw) if keep else planned


def row_parts(planned: PlannedSpecs) -> list[tuple[tuple[str, str], ...]]:
    """Per row, its requests as ``(request URL, name)`` (for :class:`~xasync.tiledjob.TiledJob`)."""
    return [
        ((sources[0].row_url, sources[0].name),)
        if len(sources) == 1
        else tuple((s.row_url, s.name) for s in sources)
        for sources in planned.sources
    ]


def source_to_dict(source: Source) -> dict[str, Any]:
    """A JSON-able form of a :class:`Source` (delivery manifests, to re-attach later)."""
    g = source.grid
    return {
        "token": source.token,
        "row_url": source.row_url,
        "grid": {"epsg": g.epsg, "bbox": list(g.bbox), "width": g.width, "height": g.height},
        "window": list(source.window),
        "target": list(source.target),
        "name": source.name,
    }


def source_from_dict(d: Mapping[str, Any]) -> Source:
    """Inverse of :func:`source_to_dict`."""
    g = d["grid"]
    x0, y0, x1, y1 = (float(v) for v in g["bbox"])
    grid = PixelGrid(int(g["epsg"]), (x0, y0, x1, y1), g["width"], g["height"])
    w0, w1, w2, w3 = (int(v) for v in d["window"])
    t0, t1, t2, t3 = (int(v) for v in d["target"])
    return Source(
        d["token"],
        d["row_url"],
        grid,
        (w0, w1, w2, w3),
        (t0, t1, t2, t3),
        d.get("name", "request"),
    )
