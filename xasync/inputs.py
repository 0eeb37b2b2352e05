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
    GridError,
    TimeRangeError,
)

logger = logging.getLogger(__name__)

BOUNDS_MODES = ("geometry", "bbox")
#: Keys allowed in the delivery extras given to :meth:`RequestSpec.body`.
DELIVERY_KEYS = frozenset({"accessKey", "secretAccessKey", "iamRoleARN", "region"})
_BUCKET_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])((?:/[^/<>{}\s]+)*)/?$")
#: Resolutions beyond these look like the wrong unit (metres on degrees, or the other way round).
MAX_DEGREE_RESOLUTION = 1.0
MIN_PROJECTED_RESOLUTION = 0.01


def _to_utc(value: Any, *, end: bool, what: str) -> dt.datetime:
    """One time bound as an aware UTC datetime; a bare date is its day's start (or end)."""
    import pandas as pd

    bare = False
    if isinstance(value, str):
        s = value.strip()
        bare = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", s))
        try:
            ts = pd.Timestamp(s)
        except (ValueError, TypeError):
            raise TimeRangeError(
                f"cannot read the {what} time {value!r}; use e.g. '2023-06-01' or "
                "'2023-06-01T10:00:00Z'",
            ) from None
    elif isinstance(value, (dt.datetime, pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(value)
    elif isinstance(value, dt.date):
        ts, bare = pd.Timestamp(value), True
    else:
        raise TimeRangeError(f"the {what} time must be a string, date or datetime, got {value!r}")
    if ts is pd.NaT or pd.isna(ts):
        raise TimeRangeError(f"the {what} time {value!r} is not a time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if bare and end:
        ts = ts + pd.Timedelta(hours=23, minutes=59, seconds=59)
    return ts.to_pydatetime().replace(microsecond=0)


def parse_time_range(time: Any) -> tuple[str, str]:
    """``(from, to)`` RFC 3339 strings (``YYYY-MM-DDTHH:MM:SSZ``, UTC) from the user's ``time``.

    Accepts ``(start, end)`` of str/date/datetime/pandas Timestamp (naive means UTC; a bare date
    as start is 00:00:00, as end 23:59:59), or one string/date meaning that whole day.

    Raises
    ------
    TimeRangeError
        Unparsable, or end before start.

    """
    if time is None:
        raise TimeRangeError("a time range is needed, e.g. time=('2023-06-01', '2023-06-30')")
    if isinstance(time, (str, dt.date)) or type(time).__name__ == "Timestamp":
        start_v = end_v = time
    elif isinstance(time, Sequence) and len(time) == 2:
        start_v, end_v = time
    else:
        raise TimeRangeError(f"time must be (start, end) or a single day, got {time!r}")
    start = _to_utc(start_v, end=False, what="start")
    end = _to_utc(end_v, end=True, what="end")
    if end < start:
        raise TimeRangeError(
            f"the time range is reversed: end {end_v!r} is before start {start_v!r}",
        )
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return start.strftime(fmt), end.strftime(fmt)


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
            f"delivery must be an S3 location like 's3://my-bucket/some/prefix' (lower-case bucket "
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
