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
#: Where :func:`fill_tokens` keeps a spec's geometry text for :func:`body_texts`.
_GEOMETRY_TEXT = "_canonical_geometry"


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


def geometry_texts(wkbs: Sequence[bytes], shapes: np.ndarray | None = None) -> list[str]:
    """``canonical(GeoJSON)`` of each 2D Polygon/MultiPolygon WKB, vectorised.

    Other geometries (and any with Z) get the slow path (``shapely.to_geojson`` parsed and
    re-written), which gives the same text by definition. ``shapes``: the same geometries as
    shapely objects, when at hand (saves parsing the WKB).
    """
    import shapely

    geoms = shapely.from_wkb(np.asarray(wkbs, dtype=object)) if shapes is None else shapes
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

    Coordinates rounded to a few decimals (all of them, after ``build_specs``) are written by
    :func:`_decimal_pair_texts`; others by one ``repr`` of all of them, cut: ``repr`` of a list
    of floats writes each with ``float.__repr__`` separated by ``", "``, and no float's text
    holds a space, a bracket or a comma.
    """
    if xy.size == 0:
        return []
    if not np.isfinite(xy).all():
        raise ValueError("Out of range float values are not JSON compliant")
    out: list[str] = []
    for start in range(0, len(xy), _PAIRS_AT_ONCE):  # bounds the temporary arrays
        part = xy[start : start + _PAIRS_AT_ONCE]
        pairs = _decimal_pair_texts(part)
        out += repr(part.tolist())[2:-2].replace(" ", "").split("],[") if pairs is None else pairs
    return out


#: Coordinates written at once by :func:`_pair_texts` (its byte matrix: about 1.3 MB).
_PAIRS_AT_ONCE = 1 << 15


#: ``"0000"`` ... ``"9999"`` as 4 ASCII bytes each, one uint32 per number.
_ASCII4 = np.frombuffer("".join(f"{i:04d}" for i in range(10000)).encode(), np.uint32)
_POW10 = 10 ** np.arange(17, dtype=np.int64)
_K_LIMIT = float(2**51)


def _common_decimals(v: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``(d, k, ok)``: ``v == k / 10**d`` where ``ok``, for the ``d`` in 0..9 that fits most."""
    best = None
    for d in range(10):
        k = np.rint(v * 10.0**d)
        ok = (np.abs(k) < _K_LIMIT) & (k / 10.0**d == v)
        if ok.all():
            return d, k, ok
        if best is None or ok.sum() > best[2].sum():
            best = (d, k, ok)
    return best  # type: ignore[return-value]


def _decimal_pair_texts(xy: np.ndarray) -> list[str] | None:
    """:func:`_pair_texts` of coordinates that are decimals of at most 9 places, vectorised.

    Where ``v == fl(k / 10**d)`` with ``|k| < 2**51``, ``10**-d`` is over twice the spacing
    of doubles at ``v``, so no other decimal of ``d`` places or fewer rounds to ``v``: the
    shortest text that reads back as ``v`` (what ``repr`` writes, between 1e-4 and 1e16) is
    ``k / 10**d`` written in fixed point without trailing zeros. Every number's text is laid
    out in one byte matrix (sign, 16 digits with the point, separator) and the bytes kept are
    read as one string. Coordinates outside that case (other doubles, ``-0.0``, below 1e-4)
    are written by ``repr``; ``None`` when no coordinate is such a decimal. Tested against
    ``repr`` on millions of values.
    """
    v = xy.ravel()
    d, k, ok = _common_decimals(v)
    ok &= (np.abs(v) >= 1e-4) | ((v == 0) & ~np.signbit(v))  # repr writes 1e-05, -0.0
    if not ok.any():
        return None
    n, ak = v.size, np.where(ok, np.abs(k), 0).astype(np.int64)
    chunks = np.empty((n, 4), np.uint32)
    for j, e in enumerate((12, 8, 4, 0)):
        chunks[:, j] = _ASCII4[(ak // 10**e) % 10000]
    digits = chunks.view(np.uint8).reshape(n, 16)  # |k| in 16 ASCII digits
    first = 16 - np.maximum(np.searchsorted(_POW10, ak, side="right"), 1)  # first digit shown
    rest = ak % 10**d
    keep = np.full(n, d)  # decimals shown: up to the last non-zero one, at least one
    for j in range(1, d + 1):
        keep -= rest % 10**j == 0
    m = np.zeros((n, 20 - d + max(d, 1) - 1), np.uint8)  # sign, digits, ".", decimals, sep
    m[:, 0] = ord("-")
    m[:, 1 : 17 - d] = digits[:, : 16 - d]
    m[:, 17 - d] = ord(".")
    if d:
        m[:, 18 - d : 18] = digits[:, 16 - d :]
    else:
        m[:, 18] = ord("0")  # "5.0"
    m[0::2, -1], m[1::2, -1] = ord(","), ord("|")  # x,y|
    shown = np.ones(m.shape, bool)
    shown[:, 0] = ok & (k < 0)
    shown[:, 1 : 17 - d] = np.arange(16 - d) >= np.minimum(first, 15 - d)[:, None]
    if d:
        shown[:, 18 - d : 18] = np.arange(d) < np.maximum(keep, 1)[:, None]
    pairs = m[shown].tobytes().decode("ascii").split("|")[:-1]
    for i in np.flatnonzero(~ok.reshape(-1, 2).all(axis=1)).tolist():
        x, y = xy[i].tolist()
        pairs[i] = float.__repr__(x) + "," + float.__repr__(y)
    return pairs


def _polygon_texts(geoms: np.ndarray, kinds: np.ndarray) -> list[str]:
    """The canonical GeoJSON of 2D Polygons/MultiPolygons, rings in stored order."""
    import shapely

    if (kinds == _POLYGON).all() and not shapely.get_num_interior_rings(geoms).any():
        xy, owner = shapely.get_coordinates(geoms, return_index=True)  # one ring each
        pairs = _pair_texts(xy)
        ends = np.cumsum(np.bincount(owner, minlength=len(geoms))).tolist()
        return [
            '{"coordinates":[[[' + "],[".join(pairs[a:b]) + ']]],"type":"Polygon"}'
            for a, b in zip([0, *ends[:-1]], ends, strict=True)
        ]
    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_owner = shapely.get_rings(parts, return_index=True)
    pairs = _pair_texts(shapely.get_coordinates(rings))
    ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
    starts = [0, *ends[:-1]]
    ring_text = ["[[" + "],[".join(pairs[a:b]) + "]]" for a, b in zip(starts, ends, strict=True)]
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


def _prepared(
    specs: Sequence[RequestSpec], shapes: np.ndarray | None = None
) -> tuple[list[_Template], list[str | None]]:
    """Each spec's template and geometry text (geometries serialised at once; ``shapes``:
    the specs' geometries as shapely objects, if at hand)."""
    templates: dict[tuple, tuple[_Template, Any]] = {}
    of_spec = []
    for s in specs:
        key = _Template.key(s)
        if key not in templates:
            templates[key] = (_Template(s), s.data)  # holding data keeps its id unique
        of_spec.append(templates[key][0])
    geometries: list[str | None] = [
        specs[i].__dict__.get(_GEOMETRY_TEXT) if t.geometry else None for i, t in enumerate(of_spec)
    ]
    picked = [i for i, t in enumerate(of_spec) if t.geometry and geometries[i] is None]
    if not picked:
        return of_spec, geometries
    if shapes is not None:
        shapes = np.asarray(shapes, dtype=object)[picked]
    wkbs = [specs[i].geometry_wkb for i in picked]
    for i, text in zip(picked, geometry_texts(wkbs, shapes), strict=True):
        geometries[i] = text
    return of_spec, geometries


def bbox_texts(bboxes: Sequence[Sequence[float]]) -> list[str]:
    """:func:`bbox_text` of each bbox, with one ``repr`` for all when they are plain floats."""
    if len(bboxes) > _PAIRS_AT_ONCE:  # bounds the temporary lists
        step = _PAIRS_AT_ONCE
        return [t for i in range(0, len(bboxes), step) for t in bbox_texts(bboxes[i : i + step])]
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
    out: list[str | None] = []
    for t, g, box, geometry in zip(templates, grids, boxes, geometries, strict=True):
        if type(g.height) is not int or type(g.width) is not int or type(g.epsg) is not int:
            out.append(None)
            continue
        shape = ',"geometry":' + geometry if t.geometry else ""
        # one f-string: the ~500 characters are copied once (a chain of + copies them 7 times)
        out.append(f"{box}{shape}{_crs_text(g.epsg)}{t.data}{g.height}{t.responses}{g.width}}}}}")
    return [
        t.rest(s, geometry) if text is None else text
        for s, t, geometry, text in zip(specs, templates, geometries, out, strict=True)
    ]


def fill_tokens(
    specs: Sequence[RequestSpec], shapes: np.ndarray | None = None, *, keep_texts: bool = True
) -> None:
    """Compute the token (and request URL) of every spec at once.

    Geometries and bboxes are serialised at once, shared parts once per call. Each token is
    stored as the spec's cached :attr:`~xasync.request.RequestSpec.token` (and its
    :attr:`~xasync.request.RequestSpec.row_url`), so the result is exactly what the spec alone
    would compute. ``shapes``: each spec's geometry as a shapely object (its WKB parsed).
    ``keep_texts``: keep each geometry's text on its spec until :func:`body_texts` writes it
    (the call's manifest), so that it is written once per call.
    """
    todo = [s for s in specs if "token" not in s.__dict__]
    if shapes is not None and len(todo) < len(specs):
        shapes = np.asarray(shapes, dtype=object)[["token" not in s.__dict__ for s in specs]]
    templates, geometries = _prepared(todo, shapes)
    if keep_texts:
        for s, geometry in zip(todo, geometries, strict=True):
            if geometry is not None:
                s.__dict__[_GEOMETRY_TEXT] = geometry
    rests = _rests(todo, templates, geometries)
    for s, template, rest in zip(todo, templates, rests, strict=True):
        h = template.head_hash.copy()
        h.update((rest + template.script).encode())
        token = h.hexdigest()
        s.__dict__["token"] = token
        s.__dict__["row_url"] = f"{s.delivery_root}/{token[:24]}"


def body_texts(specs: Sequence[RequestSpec]) -> list[str]:
    """``canonical(spec.canonical_body())`` of every spec, without building the bodies.

    A geometry's text kept by :func:`fill_tokens` is used, then let go (written once a call).
    """
    templates, geometries = _prepared(specs)
    for s in specs:
        s.__dict__.pop(_GEOMETRY_TEXT, None)
    rests = _rests(specs, templates, geometries)
    return [t.head[len('{"body":') :] + rest for t, rest in zip(templates, rests, strict=True)]
