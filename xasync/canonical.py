"""The canonical JSON text of a request, built from parts shared by the rows of a call.

A request's token is the sha256 of ``canonical({"body": <body without delivery>, "script":
<digest>})`` where ``canonical`` is ``json.dumps`` with sorted keys and no spaces. That text is
the same for every row of a call but for the grid (bbox, CRS, width, height) and the geometry,
so it is written here as a template: the shared parts are serialised once per call, and each
row adds only its own numbers. The result is byte for byte the text of the full ``json.dumps``
(tests compare both, and pin tokens computed by the earlier code): a token is what a user
bought, so it must never change.

Geometries are written from their coordinates: GEOS's GeoJSON (what ``RequestSpec.geometry``
parses) holds the shortest round-trip text of each double, so parsing it gives the very doubles
of the WKB, whose ``repr`` is what ``json.dumps`` writes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xasync._contract import OPENGIS_EPSG_PREFIX, USERDATA_IDENTIFIER

if TYPE_CHECKING:
    from xasync.request import RequestSpec

logger = logging.getLogger(__name__)

__all__ = [
    "bbox_text",
    "bbox_texts",
    "body_texts",
    "canonical",
    "fill_tokens",
    "geometry_texts",
    "request_text",
    "string_text",
    "template_key",
]

_POLYGON, _MULTIPOLYGON = 3, 6


def canonical(obj: Any) -> str:
    """``json.dumps`` with sorted keys, no spaces and no NaN: the text a token hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _number(v: Any) -> str:
    """One JSON number exactly as :func:`canonical` writes it."""
    if type(v) is float:
        if not math.isfinite(v):
            raise ValueError(f"Out of range float values are not JSON compliant: {v!r}")
        return float.__repr__(v)
    if type(v) is int:
        return int.__repr__(v)
    return canonical(v)


def string_text(value: str) -> str:
    """A JSON string as :func:`canonical` writes it (quoted as is when nothing needs escaping)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return '"' + value + '"'
    return canonical(value)


def bbox_text(bbox: Sequence[float]) -> str:
    """A list of numbers as :func:`canonical` writes it (one ``repr`` when all are floats)."""
    text = repr(list(bbox)).replace(" ", "")
    if "n" in text or "(" in text:  # nan, inf, numpy scalars: number by number
        text = "[" + ",".join(_number(v) for v in bbox) + "]"
    return text


def geometry_texts(wkbs: Sequence[bytes]) -> list[str]:
    """``canonical(GeoJSON)`` of each 2D Polygon/MultiPolygon WKB, vectorised.

    Other geometries (and any with Z) get the slow path (``shapely.to_geojson`` parsed and
    re-written), which gives the same text by definition.
    """
    import shapely

    geoms = shapely.from_wkb(np.asarray(wkbs, dtype=object))
    out: list[str | None] = [None] * len(geoms)
    kinds = shapely.get_type_id(geoms)
    fast = np.isin(kinds, (_POLYGON, _MULTIPOLYGON)) & ~shapely.has_z(geoms)
    for i in np.flatnonzero(~fast):
        out[i] = canonical(json.loads(shapely.to_geojson(geoms[i])))
    picked = np.flatnonzero(fast)
    if picked.size:
        texts = _polygon_texts(geoms[picked], kinds[picked])
        for j, text in zip(picked.tolist(), texts, strict=True):
            out[j] = text
    return out  # type: ignore[return-value]


def _pair_texts(xy: np.ndarray) -> list[str]:
    """``"x,y"`` of each coordinate, each number as ``repr`` writes it (as ``json.dumps`` does).

    ``repr`` of a list of floats writes each with ``float.__repr__`` separated by ``", "``, and
    no float's text holds a space, a bracket or a comma: one ``repr`` of all coordinates, cut.
    """
    if xy.size == 0:
        return []
    if not np.isfinite(xy).all():
        raise ValueError("Out of range float values are not JSON compliant")
    return repr(xy.tolist())[2:-2].replace(" ", "").split("],[")


def _polygon_texts(geoms: np.ndarray, kinds: np.ndarray) -> list[str]:
    """The canonical GeoJSON of 2D Polygons/MultiPolygons, rings in stored order."""
    import shapely

    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)
    pairs = _pair_texts(shapely.get_coordinates(rings))
    ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
    starts = [0, *ends[:-1]]
    ring_text = ["[[" + "],[".join(pairs[a:b]) + "]]" for a, b in zip(starts, ends, strict=True)]
    if len(rings) == len(geoms) and (kinds == _POLYGON).all():  # one ring each: the usual case
        return ['{"coordinates":[' + t + '],"type":"Polygon"}' for t in ring_text]
    part_rings: list[list[str]] = [[] for _ in range(len(parts))]
    for owner, t in zip(ring_owner.tolist(), ring_text, strict=True):
        part_rings[owner].append(t)
    geom_parts: list[list[str]] = [[] for _ in range(len(geoms))]
    for owner, rs in zip(part_owner.tolist(), part_rings, strict=True):
        geom_parts[owner].append("[" + ",".join(rs) + "]")
    out = []
    for kind, ps in zip(kinds.tolist(), geom_parts, strict=True):
        if kind == _POLYGON:
            out.append('{"coordinates":' + ps[0] + ',"type":"Polygon"}')
        else:
            out.append('{"coordinates":[' + ",".join(ps) + '],"type":"MultiPolygon"}')
    return out


class _Template:
    """The shared parts of the canonical text of the requests of one call."""

    def __init__(self, spec: RequestSpec) -> None:
        if spec.evalscript_ref is not None:
            script = '"evalscriptReference":' + canonical({"s3": {"url": spec.evalscript_ref}})
        else:
            script = '"evalscript":' + canonical(spec.evalscript)
        self.head = '{"body":{' + script + ',"input":{"bounds":{"bbox":'
        responses = [{"identifier": r, "format": {"type": "image/tiff"}} for r in spec.responses]
        if spec.userdata:
            responses.append(
                {"identifier": USERDATA_IDENTIFIER, "format": {"type": "application/json"}}
            )
        self.data = '},"data":' + canonical(list(spec.data)) + '},"output":{"height":'
        self.responses = ',"responses":' + canonical(responses) + ',"width":'
        self.script = ',"script":' + canonical(spec.evalscript_digest) + "}"
        self.geometry = spec.bounds_mode == "geometry"
        self.head_hash = hashlib.sha256(self.head.encode())

    @staticmethod
    def key(spec: RequestSpec) -> tuple:
        return (
            spec.evalscript,
            spec.evalscript_ref,
            id(spec.data),
            spec.responses,
            spec.userdata,
            spec.evalscript_digest,
            spec.bounds_mode,
        )

    def rest(self, spec: RequestSpec, geometry: str | None) -> str:
        """The body's text after :attr:`head` for one spec (up to its closing brace)."""
        g = spec.grid
        bounds = bbox_text(g.bbox) + (f',"geometry":{geometry}' if self.geometry else "")
        return (
            bounds
            + _crs_text(g.epsg)
            + self.data
            + _number(g.height)
            + self.responses
            + _number(g.width)
            + "}}"
        )


@functools.lru_cache(maxsize=256)
def _crs_text(epsg: int) -> str:
    """``"properties"`` of the bounds: the CRS as :attr:`PixelGrid.crs_url` writes it."""
    return ',"properties":{"crs":' + canonical(f"{OPENGIS_EPSG_PREFIX}{epsg}") + "}"


def template_key(spec: RequestSpec) -> tuple:
    """What the canonical texts of the rows of a call share (hashable; ``data`` by identity)."""
    return _Template.key(spec)


def request_text(spec: RequestSpec) -> str:
    """The canonical text of one spec's ``{"body", "script"}`` document."""
    template = _Template(spec)
    geometry = geometry_texts([spec.geometry_wkb])[0] if template.geometry else None
    return template.head + template.rest(spec, geometry) + template.script


def _prepared(specs: Sequence[RequestSpec]) -> tuple[list[_Template], list[str | None]]:
    """Each spec's template and geometry text (geometries serialised at once)."""
    templates: dict[tuple, tuple[_Template, Any]] = {}
    of_spec = []
    for s in specs:
        key = _Template.key(s)
        if key not in templates:
            templates[key] = (_Template(s), s.data)  # holding data keeps its id unique
        of_spec.append(templates[key][0])
    picked = [i for i, t in enumerate(of_spec) if t.geometry]
    geometries: list[str | None] = [None] * len(specs)
    for i, text in zip(picked, geometry_texts([specs[i].geometry_wkb for i in picked])):
        geometries[i] = text
    return of_spec, geometries


def bbox_texts(bboxes: Sequence[Sequence[float]]) -> list[str]:
    """:func:`bbox_text` of each bbox, with one ``repr`` for all when they are plain floats."""
    if bboxes and all(len(b) == 4 for b in bboxes):
        flat = [v for b in bboxes for v in b]
        if set(map(type, flat)) <= {float} and np.isfinite(flat).all():
            text = repr(flat).replace(" ", "")[1:-1].split(",")
            return [f"[{a},{b},{c},{d}]" for a, b, c, d in zip(*[iter(text)] * 4, strict=True)]
    return [bbox_text(b) for b in bboxes]


def _rests(specs: Sequence[RequestSpec], templates: list[_Template], geometries: list) -> list:
    """``template.rest(spec, geometry)`` of every spec (bboxes written at once)."""
    grids = [s.grid for s in specs]
    boxes = bbox_texts([g.bbox for g in grids])
    out = []
    for t, g, box, geometry in zip(templates, grids, boxes, geometries, strict=True):
        if type(g.height) is not int or type(g.width) is not int or type(g.epsg) is not int:
            out.append(None)
            continue
        out.append(
            box
            + (',"geometry":' + geometry if t.geometry else "")
            + _crs_text(g.epsg)
            + t.data
            + int.__repr__(g.height)
            + t.responses
            + int.__repr__(g.width)
            + "}}"
        )
    return [
        t.rest(s, geometry) if text is None else text
        for s, t, geometry, text in zip(specs, templates, geometries, out, strict=True)
    ]


def fill_tokens(specs: Sequence[RequestSpec]) -> None:
    """Compute the token (and request URL) of every spec at once.

    Geometries and bboxes are serialised at once, shared parts once per call. Each token is
    stored as the spec's cached :attr:`~xasync.request.RequestSpec.token` (and its
    :attr:`~xasync.request.RequestSpec.row_url`), so the result is exactly what the spec alone
    would compute.
    """
    todo = [s for s in specs if "token" not in s.__dict__]
    templates, geometries = _prepared(todo)
    rests = _rests(todo, templates, geometries)
    for s, template, rest in zip(todo, templates, rests, strict=True):
        h = template.head_hash.copy()
        h.update((rest + template.script).encode())
        token = h.hexdigest()
        s.__dict__["token"] = token
        s.__dict__["row_url"] = f"{s.delivery_root}/{token[:24]}"


def body_texts(specs: Sequence[RequestSpec]) -> list[str]:
    """``canonical(spec.canonical_body())`` of every spec, without building the bodies."""
    templates, geometries = _prepared(specs)
    rests = _rests(specs, templates, geometries)
    return [t.head[len('{"body":') :] + rest for t, rest in zip(templates, rests, strict=True)]
