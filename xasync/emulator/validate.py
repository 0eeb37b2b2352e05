"""Validation of an Async API create body (spec section 5), as the service does before accepting.

:func:`parse_body` turns a JSON body into a :class:`ParsedRequest` or raises :class:`BadPayload`
whose message starts with the offending field (e.g. ``output.width: ...``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from xasync import _contract as C

from .catalog import InvalidField, check_data_item

logger = logging.getLogger(__name__)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMATS = frozenset(C.FORMAT_EXTENSIONS)


class BadPayload(Exception):
    """A create body the service would reject with 400 COMMON_BAD_PAYLOAD."""


@dataclass(frozen=True)
class S3Location:
    """An ``s3://bucket/key`` location with the credentials given for it (never logged)."""

    bucket: str
    key: str
    access_key: str | None
    secret_key: str | None
    iam_role: str | None
    region: str | None

    def __repr__(self) -> str:  # credentials stay out of reprs
        return f"S3Location(bucket={self.bucket!r}, key={self.key!r})"


@dataclass(frozen=True)
class ParsedRequest:
    """What processing needs from a valid body."""

    epsg: int  # 4326 for CRS84
    crs_url: str
    bbox: tuple[float, float, float, float]
    geometry: dict | None
    width: int
    height: int
    data_types: tuple[str, ...]
    time_from: datetime | None
    time_to: datetime | None
    responses: tuple[tuple[str, str], ...]  # (identifier, format type)
    delivery: S3Location
    evalscript: str | None
    evalscript_ref: S3Location | None
    data: tuple[dict, ...] = ()  # the input.data items as sent (type, dataFilter, processing)


def _fail(field: str, message: str) -> BadPayload:
    return BadPayload(f"{field}: {message}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_crs(bounds: dict) -> tuple[int, str]:
    props = bounds.get("properties") or {}
    if not isinstance(props, dict):
        raise _fail("input.bounds.properties", "must be an object")
    url = props.get("crs", C.CRS84_URL)
    if not isinstance(url, str):
        raise _fail("input.bounds.properties.crs", "must be a CRS URL string")
    if url == C.CRS84_URL:
        return 4326, url
    if url.startswith(C.OPENGIS_EPSG_PREFIX):
        code = url[len(C.OPENGIS_EPSG_PREFIX) :]
        if code.isdigit():
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                CRS.from_epsg(int(code))
            except CRSError:
                raise _fail("input.bounds.properties.crs", f"unknown EPSG code {code}") from None
            return int(code), url
    raise _fail(
        "input.bounds.properties.crs",
        f"unsupported CRS {url!r}; use {C.OPENGIS_EPSG_PREFIX}<code> or {C.CRS84_URL}",
    )


def _parse_bounds(inp: dict) -> tuple[int, str, tuple[float, float, float, float], dict | None]:
    bounds = inp.get("bounds")
    if not isinstance(bounds, dict):
        raise _fail("input.bounds", "is required and must be an object")
    epsg, url = _parse_crs(bounds)
    bbox = bounds.get("bbox")
    geometry = bounds.get("geometry")
    if bbox is None and geometry is None:
        raise _fail("input.bounds", "needs bbox and/or geometry")
    if geometry is not None:
        if not isinstance(geometry, dict) or geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            raise _fail("input.bounds.geometry", "must be a GeoJSON Polygon or MultiPolygon")
        import shapely.geometry
        from shapely.errors import ShapelyError

        try:
            shape = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, ShapelyError) as exc:
            raise _fail("input.bounds.geometry", f"invalid GeoJSON ({exc})") from None
        if shape.is_empty or shape.area <= 0:
            raise _fail("input.bounds.geometry", "is empty or has no area")
        geom_bounds = tuple(float(v) for v in shape.bounds)
    if bbox is not None:
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise _fail("input.bounds.bbox", "must be an array of exactly 4 numbers")
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        if not (minx < maxx and miny < maxy):
            raise _fail("input.bounds.bbox", "needs min_x < max_x and min_y < max_y")
        return epsg, url, (minx, miny, maxx, maxy), geometry
    return epsg, url, geom_bounds, geometry


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise _fail(field, f"must be an RFC 3339 date-time, got {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


def _parse_data(inp: dict) -> tuple[tuple[str, ...], datetime | None, datetime | None]:
    data = inp.get("data")
    if not isinstance(data, list) or not data:
        raise _fail("input.data", "must be an array with at least 1 item")
    types, t_from, t_to = [], None, None
    for i, item in enumerate(data):
        field = f"input.data[{i}]"
        if not isinstance(item, dict):
            raise _fail(field, "must be an object")
        dtype = item.get("type")
        if not isinstance(dtype, str) or not (
            dtype in C.COLLECTION_TYPES or dtype.startswith(C.CUSTOM_COLLECTION_PREFIXES)
        ):
            raise _fail(f"{field}.type", f"unknown data collection type {dtype!r}")
        types.append(dtype)
        try:
            check_data_item(item, field)
        except InvalidField as exc:
            raise BadPayload(str(exc)) from None
        time_range = (item.get("dataFilter") or {}).get("timeRange")
        if time_range is None:
            continue
        if not isinstance(time_range, dict):
            raise _fail(f"{field}.dataFilter.timeRange", "must be an object with from and to")
        tf = _parse_time(time_range.get("from"), f"{field}.dataFilter.timeRange.from")
        tt = _parse_time(time_range.get("to"), f"{field}.dataFilter.timeRange.to")
        if tf > tt:
            raise _fail(f"{field}.dataFilter.timeRange", "from must not be after to")
        if t_from is None:
            t_from, t_to = tf, tt
    return tuple(types), t_from, t_to


def _parse_size(out: dict, bbox: tuple[float, float, float, float]) -> tuple[int, int]:
    has_wh = "width" in out or "height" in out
    has_res = "resx" in out or "resy" in out
    if has_wh == has_res:
        raise _fail("output", "set exactly one of the pairs width/height or resx/resy")
    if has_wh:
        w, h = out.get("width"), out.get("height")
        for name, v in (("width", w), ("height", h)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise _fail(f"output.{name}", f"must be an integer, got {v!r}")
    else:
        rx, ry = out.get("resx"), out.get("resy")
        for name, v in (("resx", rx), ("resy", ry)):
            if not _is_number(v) or v <= 0:
                raise _fail(f"output.{name}", f"must be a positive number, got {v!r}")
        w = round((bbox[2] - bbox[0]) / rx)
        h = round((bbox[3] - bbox[1]) / ry)
    for name, v in (("width", w), ("height", h)):
        if not C.MIN_PIXELS_PER_SIDE <= v <= C.MAX_PIXELS_PER_SIDE:
            raise _fail(
                f"output.{name}",
                f"{v} px is out of range {C.MIN_PIXELS_PER_SIDE}..{C.MAX_PIXELS_PER_SIDE}",
            )
    return int(w), int(h)


def _parse_responses(out: dict) -> tuple[tuple[str, str], ...]:
    responses = out.get("responses")
    if not isinstance(responses, list) or not responses:
        raise _fail("output.responses", "must be an array with at least 1 item")
    parsed, seen = [], set()
    for i, resp in enumerate(responses):
        field = f"output.responses[{i}]"
        if not isinstance(resp, dict):
            raise _fail(field, "must be an object")
        ident = resp.get("identifier", C.DEFAULT_OUTPUT_ID)
        if not isinstance(ident, str) or not ident:
            raise _fail(f"{field}.identifier", "must be a non-empty string")
        if ident in seen:
            raise _fail(f"{field}.identifier", f"duplicate identifier {ident!r}")
        seen.add(ident)
        fmt = resp.get("format") or {"type": "image/png"}
        ftype = fmt.get("type") if isinstance(fmt, dict) else None
        if ftype not in _FORMATS:
            raise _fail(f"{field}.format.type", f"unsupported format {ftype!r}")
        quality = fmt.get("quality") if ftype == "image/jpeg" else None
        if quality is not None and (
            not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 100
        ):
            raise _fail(f"{field}.format.quality", f"must be an integer 0..100, got {quality!r}")
        parsed.append((ident, ftype))
    return tuple(parsed)


def _parse_s3(info: Any, field: str, *, need_creds: bool) -> S3Location:
    if not isinstance(info, dict):
        raise _fail(field, "must be an object")
    url = info.get("url")
    if not isinstance(url, str) or not url.startswith("s3://") or len(url) <= 5:
        raise _fail(f"{field}.url", f"must be an s3://bucket/... URL, got {url!r}")
    bucket, _, key = url[5:].partition("/")
    if len(bucket) < 3:
        raise _fail(f"{field}.url", f"invalid bucket name {bucket!r}")
    ak, sk, role = info.get("accessKey"), info.get("secretAccessKey"), info.get("iamRoleARN")
    for name, v in (("accessKey", ak), ("secretAccessKey", sk), ("iamRoleARN", role)):
        if v is not None and not isinstance(v, str):
            raise _fail(f"{field}.{name}", "must be a string")
    if need_creds and not ((ak and sk) or role):
        raise _fail(field, "needs accessKey and secretAccessKey, or iamRoleARN")
    region = info.get("region", info.get("regin"))
    return S3Location(bucket, key.strip("/"), ak, sk, role, region)


def parse_body(body: Any) -> ParsedRequest:
    """Validate a create body; raise :class:`BadPayload` naming the field at fault."""
    if not isinstance(body, dict) or not body:
        raise BadPayload("Request body should be non-empty.")
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise _fail("input", "is required and must be an object")
    epsg, crs_url, bbox, geometry = _parse_bounds(inp)
    types, t_from, t_to = _parse_data(inp)
    out = body.get("output")
    if not isinstance(out, dict):
        raise _fail("output", "is required and must be an object")
    width, height = _parse_size(out, bbox)
    responses = _parse_responses(out)
    delivery = out.get("delivery")
    if not isinstance(delivery, dict) or "s3" not in delivery:
        raise _fail("output.delivery", "is required and must contain s3")
    dest = _parse_s3(delivery["s3"], "output.delivery.s3", need_creds=True)
    script, ref = body.get("evalscript"), body.get("evalscriptReference")
    if (script is None) == (ref is None):
        raise _fail("evalscript", "set exactly one of evalscript or evalscriptReference")
    ref_loc = None
    if script is not None and (not isinstance(script, str) or not script.strip()):
        raise _fail("evalscript", "must be a non-empty string")
    if ref is not None:
        if not isinstance(ref, dict) or "s3" not in ref:
            raise _fail("evalscriptReference", "must contain s3")
        ref_loc = _parse_s3(ref["s3"], "evalscriptReference.s3", need_creds=False)
        if not ref_loc.key:
            raise _fail("evalscriptReference.s3.url", "must point at an object")
    return ParsedRequest(
        epsg=epsg,
        crs_url=crs_url,
        bbox=bbox,
        geometry=geometry,
        width=width,
        height=height,
        data_types=types,
        time_from=t_from,
        time_to=t_to,
        responses=responses,
        delivery=dest,
        evalscript=script,
        evalscript_ref=ref_loc,
        data=tuple(inp["data"]),
    )


def redact(body: dict) -> dict:
    """A deep copy of ``body`` with every S3 credential replaced by ``"***"``."""
    import copy

    out = copy.deepcopy(body)
    places = [
        ((out.get("output") or {}).get("delivery") or {}).get("s3"),
        (out.get("evalscriptReference") or {}).get("s3"),
    ]
    for place in places:
        if isinstance(place, dict):
            for name in ("accessKey", "secretAccessKey", "iamRoleARN"):
                if name in place:
                    place[name] = "***"
    return out
