"""Validation of the plain inputs of a request: time range, data collections, delivery URL, CRS.

Each check raises a typed :class:`~xasync.errors.ValidationError` subclass with a message that
names the problem, before anything is paid for. Used by :func:`xasync.request.build_specs`.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xasync._contract import COLLECTION_TYPES, CUSTOM_COLLECTION_PREFIXES
from xasync.errors import (
    CollectionError,
    CrsError,
    DeliveryUrlError,
    GeometryError,
    GridError,
    OptionError,
    TimeRangeError,
)

logger = logging.getLogger(__name__)

BOUNDS_MODES = ("geometry", "bbox")
#: Keys allowed in the delivery extras given to :meth:`RequestSpec.body`.
DELIVERY_KEYS = frozenset({"accessKey", "secretAccessKey", "iamRoleARN", "region", "credentials"})
_BUCKET_URL = re.compile(r"^(?:s3|gs)://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])((?:/[^/<>{}\s]+)*)/?$")
#: Resolutions beyond these look like the wrong unit (metres on degrees, or the other way round).
MAX_DEGREE_RESOLUTION = 1.0
MIN_PROJECTED_RESOLUTION = 0.01


_PERIOD_STRINGS = ((re.compile(r"\d{4}"), "Y"), (re.compile(r"\d{4}-\d{2}"), "M"))
_DAY_STRING = re.compile(r"\d{4}-\d{2}-\d{2}")
_NP_PERIOD_UNITS = {"Y": "Y", "M": "M", "D": "D"}
TIME_RULES = """
    Time values (``time=`` of ``process``) follow these rules:

    - ``(start, end)``: each a ``str``, ``datetime.date``, ``datetime.datetime``,
      ``pandas.Timestamp``, ``numpy.datetime64`` or ``pandas.Period``; or one such value; or a
      ``pandas.DatetimeIndex`` (from its first to its last day).
    - A value without a time of day (a ``date``; a string ``"2024-06-15"``; a datetime,
      Timestamp or datetime64 at exactly midnight) means that whole day: as a start its first
      second, as an end its last second (an end date is inclusive).
    - A month string ``"2024-06"``, a year ``"2024"``, a ``datetime64`` of unit M/Y or a
      ``pandas.Period`` means that whole month, year or period.
    - A string with a time of day (``"2024-06-15T10:00:00Z"``) or a datetime not at midnight is
      that instant. Naive values are UTC; aware ones are converted to UTC.
    - One value alone stands for its whole day/month/year/period; an instant alone, or any range
      that ends where it starts, is zero-length and raises :class:`TimeRangeError` (the service
      would find no scene and still charge for the empty images).
"""


def _span(value: Any, what: str) -> tuple[Any, Any]:
    """``(first, last)`` aware UTC Timestamps (whole seconds) of the time a value stands for."""
    import pandas as pd

    try:
        if isinstance(value, pd.Period):
            return _utc(value.start_time), _utc(value.end_time)
        if isinstance(value, str):
            text = value.strip()
            for pattern, freq in _PERIOD_STRINGS:
                if pattern.fullmatch(text):
                    return _span(pd.Period(text, freq=freq), what)
            ts = pd.Timestamp(text)
            if _DAY_STRING.fullmatch(text):
                return _day(ts)
            return _instant(ts)
        if isinstance(value, np.datetime64):
            unit = np.datetime_data(value.dtype)[0]
            if unit in _NP_PERIOD_UNITS and not np.isnat(value):
                return _span(pd.Period(value, freq=_NP_PERIOD_UNITS[unit]), what)
            value = pd.Timestamp(value)
        if isinstance(value, dt.datetime):  # pandas Timestamp included
            ts = pd.Timestamp(value)
            if ts is pd.NaT:
                raise ValueError("NaT")
            return _day(ts) if ts == ts.normalize() else _instant(ts)
        if isinstance(value, dt.date):
            return _day(pd.Timestamp(value))
    except (ValueError, TypeError, OverflowError):
        raise TimeRangeError(
            f"cannot read the {what} time {value!r}; use e.g. '2023-06-01', '2023-06' or "
            "'2023-06-01T10:00:00Z'",
        ) from None
    raise TimeRangeError(
        f"the {what} time must be a string, date, datetime, Timestamp, datetime64 or Period, "
        f"got {value!r}",
    )


def _utc(ts: Any) -> Any:
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.floor("s")


def _day(ts: Any) -> tuple[Any, Any]:
    import pandas as pd

    start = ts.normalize()
    return _utc(start), _utc(start + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))


def _instant(ts: Any) -> tuple[Any, Any]:
    return _utc(ts), _utc(ts)


def parse_time_range(time: Any) -> tuple[str, str]:
    """``(from, to)`` RFC 3339 strings (``YYYY-MM-DDTHH:MM:SSZ``, UTC) from the user's ``time``.

    Raises
    ------
    TimeRangeError
        Unparsable, reversed or zero-length.

    Notes
    -----
    """
    import pandas as pd

    if time is None:
        raise TimeRangeError("a time range is needed, e.g. time=('2023-06-01', '2023-06-30')")
    if isinstance(time, pd.DatetimeIndex):
        if len(time) == 0 or time.hasnans:
            raise TimeRangeError("time is an empty DatetimeIndex or holds NaT")
        start, end = _span(time.min(), "start")[0], _span(time.max(), "end")[1]
        start_v, end_v = time.min(), time.max()
    elif isinstance(time, (Sequence, np.ndarray)) and not isinstance(time, str):
        if len(time) != 2:
            raise TimeRangeError(f"time must be (start, end) or one value, got {time!r}")
        start_v, end_v = time
        start, end = _span(start_v, "start")[0], _span(end_v, "end")[1]
    else:
        start_v = end_v = time
        start, end = _span(time, "given")
    if end < start:
        raise TimeRangeError(
            f"the time range is reversed: end {end_v!r} is before start {start_v!r}",
        )
    if end == start:
        raise TimeRangeError(
            f"the time range {start_v!r} .. {end_v!r} has zero length ({start.isoformat()}); the "
            "service would find no scene and still charge. Give a day ('2024-06-15'), a month "
            "('2024-06') or (start, end)",
        )
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return start.strftime(fmt), end.strftime(fmt)


parse_time_range.__doc__ = (parse_time_range.__doc__ or "") + TIME_RULES


def check_collection(ctype: Any) -> str:
    if isinstance(ctype, str) and (
        ctype in COLLECTION_TYPES
        or any(ctype.startswith(p) and len(ctype) > len(p) for p in CUSTOM_COLLECTION_PREFIXES)
    ):
        return ctype
    close = difflib.get_close_matches(str(ctype), sorted(COLLECTION_TYPES), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise CollectionError(
        f"unknown data collection {ctype!r}.{hint} Known: {', '.join(sorted(COLLECTION_TYPES))}, "
        f"or a custom collection {'/'.join(p + '<id>' for p in CUSTOM_COLLECTION_PREFIXES)}",
    )


def data_items(data: Any, time: Any) -> tuple[tuple[dict[str, Any], ...], tuple[str, str]]:
    """``input.data`` items with the time filter set (where the item does not set its own)."""
    items = [data] if isinstance(data, (str, Mapping)) else data
    if not isinstance(items, Sequence) or not items:
        raise CollectionError(
            f"data must be a collection type, an input.data dict or a list, got {data!r}",
        )
    rng = parse_time_range(time) if time is not None else None
    out = []
    for item in items:
        if isinstance(item, str):
            item = {"type": item}
        if not isinstance(item, Mapping) or "type" not in item:
            raise CollectionError(f"each data item needs a 'type', got {item!r}")
        check_collection(item["type"])
        d = copy.deepcopy(dict(item))
        filt = d.setdefault("dataFilter", {})
        if not isinstance(filt, dict):
            raise CollectionError(f"dataFilter of {d['type']!r} must be a dict")
        if "timeRange" in filt:
            tr = filt["timeRange"]
            if not isinstance(tr, Mapping):
                raise TimeRangeError(f"timeRange of {d['type']!r} must be {{'from', 'to'}}")
            filt["timeRange"] = dict(
                zip(("from", "to"), parse_time_range((tr.get("from"), tr.get("to"))), strict=True),
            )
        elif rng is None:
            raise TimeRangeError("a time range is needed, e.g. time=('2023-06-01', '2023-06-30')")
        else:
            filt["timeRange"] = {"from": rng[0], "to": rng[1]}
        out.append(d)
    tr0 = out[0]["dataFilter"]["timeRange"]
    return tuple(out), rng or (tr0["from"], tr0["to"])


def check_delivery(delivery: Any) -> str:
    if not isinstance(delivery, str) or not _BUCKET_URL.match(delivery.strip()):
        raise DeliveryUrlError(
            f"delivery must be an S3 or GCS location like 's3://my-bucket/some/prefix' or "
            f"'gs://my-bucket/some/prefix' (lower-case bucket "
            f"name, no placeholders), got {delivery!r}",
        )
    return delivery.strip().rstrip("/")


def epsg_of(crs: Any, what: str) -> int:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        c = CRS.from_user_input(crs)
    except CRSError:
        raise CrsError(f"{what} {crs!r} is not a CRS pyproj understands") from None
    epsg = c.to_epsg()
    if epsg is None:
        raise CrsError(
            f"{what} {c.name!r} has no EPSG code; the service needs one (e.g. crs='utm', "
            "crs='EPSG:3857' or crs=4326)",
        )
    return int(epsg)


def check_resolution_units(epsg: int, resolution: Any) -> None:
    from pyproj import CRS

    c = CRS.from_epsg(epsg)
    res = (resolution, resolution) if np.isscalar(resolution) else tuple(resolution)
    if c.is_geographic and max(res) > MAX_DEGREE_RESOLUTION:
        raise GridError(
            f"resolution {resolution!r} is in degrees for EPSG:{epsg} and looks like metres; "
            "use crs='utm' (or a projected CRS) for a resolution in metres",
        )
    if not c.is_geographic and min(res) < MIN_PROJECTED_RESOLUTION:
        raise GridError(
            f"resolution {resolution!r} is in {c.axis_info[0].unit_name}s for EPSG:{epsg} and looks "
            "like degrees; give it in the CRS's units (e.g. 10 for 10 m)",
        )


def check_frame(gdf: Any, resolution: Any, size: Any, bounds: Any) -> None:
    """The frame and the grid options, before anything else is looked at."""
    import geopandas as gpd

    from xasync.grid import check_resolution

    if not isinstance(gdf, (gpd.GeoDataFrame, gpd.GeoSeries)):
        raise GeometryError(f"expected a GeoDataFrame, got {type(gdf).__name__}")
    if len(gdf) == 0:
        raise GeometryError("the GeoDataFrame is empty: there is nothing to request")
    if gdf.crs is None:
        raise CrsError(
            "the GeoDataFrame has no CRS; set it first, e.g. gdf = gdf.set_crs('EPSG:4326')",
        )
    if (resolution is None) == (size is None):
        raise OptionError(
            "give exactly one of resolution= (pixel size in CRS units) or size=(width, height)"
            + (", not both" if resolution is not None else ""),
        )
    if resolution is not None:
        check_resolution(resolution)  # positive, finite, one number or a pair
    if bounds not in BOUNDS_MODES:
        raise OptionError(f"bounds must be one of {BOUNDS_MODES}, got {bounds!r}")
