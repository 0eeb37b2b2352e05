"""Helpers for the emulator's tests: tokens, bodies, waiting, reading S3."""

from __future__ import annotations

import json
import time

import httpx
import pytest

LEGACY = "/api/v1/async/process"
PLANET = "/async/v1/process"
CRS_URL = "http://www.opengis.net/def/crs/EPSG/0/{}"

SIMPLE_SCRIPT = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {bands: 2, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [s.B04, s.B08]; }
"""


def get_token(emu, **extra) -> str:
    r = httpx.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            **extra,
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def make_body(
    bucket: str,
    *,
    prefix: str = "out",
    script: str = SIMPLE_SCRIPT,
    bbox=(13.0, 45.0, 13.05, 45.04),
    epsg: int = 4326,
    size=(40, 32),
    res=None,
    geometry=None,
    responses=("default",),
    time_range=("2023-06-01T00:00:00Z", "2023-06-30T23:59:59Z"),
) -> dict:
    bounds: dict = {"properties": {"crs": CRS_URL.format(epsg)}}
    if bbox is not None:
        bounds["bbox"] = list(bbox)
    if geometry is not None:
        bounds["geometry"] = geometry
    data = {"type": "sentinel-2-l2a"}
    if time_range is not None:
        data["dataFilter"] = {"timeRange": {"from": time_range[0], "to": time_range[1]}}
    output: dict = {
        "responses": [{"identifier": r, "format": {"type": "image/tiff"}} for r in responses],
        "delivery": {
            "s3": {
                "url": f"s3://{bucket}/{prefix}",
                "accessKey": "AKIDEMO",
                "secretAccessKey": "very-secret-delivery-key",
            }
        },
    }
    if res is not None:
        output["resx"], output["resy"] = res
    else:
        output["width"], output["height"] = size
    return {"input": {"bounds": bounds, "data": [data]}, "output": output, "evalscript": script}


# The emulator holds a request on the monotonic clock and reports times from time.time():
# the two may disagree by a few milliseconds.
CLOCK_SLACK = 0.01


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until true (a generous bound against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail("condition not reached")


def wait_gone(api: httpx.Client, request_id: str, timeout: float = 60.0) -> int:
    """Poll status until 404; return how many status calls it made (the 404 included).

    ``timeout`` is a generous guard against hangs, not a measurement: the test fails past it.
    """
    deadline = time.monotonic() + timeout
    calls = 0
    while time.monotonic() < deadline:
        r = api.get(f"{LEGACY}/{request_id}")
        calls += 1
        if r.status_code == 404:
            return calls
        assert r.status_code == 200, r.text
        time.sleep(0.05)
    pytest.fail(f"request {request_id} still RUNNING after {timeout} s")


def service_times(emu, request_id: str) -> tuple[float, float]:
    """(accepted, finished) of ``request_id`` on the emulator's clock (``stats["requests"]``)."""
    (entry,) = [r for r in emu.stats["requests"] if r["id"] == request_id]
    assert entry["finished"] is not None, f"request {request_id} has not finished"
    return entry["accepted"], entry["finished"]


def read_json(s3c, bucket: str, key: str) -> dict:
    return json.loads(s3c.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys(s3c, bucket: str, prefix: str = "") -> set[str]:
    resp = s3c.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for o in resp.get("Contents", [])}


def read_tif(emu, bucket: str, key: str) -> dict:
    """Open a delivered GeoTIFF through the S3 server (rasterio + s3fs) and return its facts."""
    import rasterio
    import s3fs

    fs = s3fs.S3FileSystem(**emu.storage_options, skip_instance_cache=True)
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"s3://{bucket}/{key}", opener=fs) as ds,
    ):
        return {
            "width": ds.width,
            "height": ds.height,
            "count": ds.count,
            "dtype": ds.dtypes[0],
            "crs": ds.crs,
            "transform": ds.transform,
            "nodata": ds.nodata,
            "tiled": ds.profile.get("tiled", False),
            "block_shapes": ds.block_shapes,
            "compression": ds.compression,
            "data": ds.read(),
        }


def s2_scene_dates(t_from, t_to):
    """The documented Sentinel-2 calendar: 2017-01-01T10:00Z + 5*k days within [t_from, t_to]."""
    from datetime import datetime, timedelta, timezone

    epoch = datetime(2017, 1, 1, 10, tzinfo=timezone.utc)
    k = -((epoch - t_from) // timedelta(days=5))  # ceil((t_from - epoch) / 5 days)
    out = []
    while epoch + timedelta(days=5 * k) <= t_to:
        out.append(epoch + timedelta(days=5 * k))
        k += 1
    return out


_S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
_CANOPY = [0.03, 0.035, 0.07, 0.035, 0.10, 0.28, 0.36, 0.40, 0.42, 0.40, 0.01, 0.19, 0.09]
_SOIL = [0.08, 0.10, 0.13, 0.17, 0.20, 0.22, 0.24, 0.25, 0.26, 0.26, 0.02, 0.32, 0.28]
_WATER = [0.06, 0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.001, 0.005, 0.003]
_MASK64 = (1 << 64) - 1


def _u(i, j, s):
    """Step 3 of the documented formula, in Python integers (no numpy wrap-around tricks)."""
    import numpy as np

    def one(a: int, b: int) -> float:
        h = (a * 0x9E3779B97F4A7C15 + b * 0xC2B2AE3D27D4EB4F + s * 0x165667B19E3779F9) & _MASK64
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
        return (h >> 11) / 2**53

    i, j = np.broadcast_arrays(np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64))
    return np.vectorize(one, otypes=[float])(i, j)


def _vn(x, y, length, salt):
    import numpy as np

    gx, gy = x / length, y / length
    i, j = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    tx, ty = gx - i, gy - j
    sx, sy = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    top = _u(i, j, salt) * (1 - sx) + _u(i + 1, j, salt) * sx
    bottom = _u(i, j + 1, salt) * (1 - sx) + _u(i + 1, j + 1, salt) * sx
    return top * (1 - sy) + bottom * sy


def surface(lon, lat, date):
    """Steps 2-7 of the documented scene (docs/emulator.md): texture n, green cover g, classes."""
    import numpy as np

    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x = 6371008.8 * np.radians(lon) * np.cos(np.radians(lat))
    y = 6371008.8 * np.radians(lat)
    n = 0.5 * _vn(x, y, 60, 11) + 0.3 * _vn(x, y, 25, 12) + 0.2 * _vn(x, y, 11, 13)
    fy = np.floor(y / 300).astype(np.int64)
    fx = np.floor((x + 400 * _u(fy, 0, 21)) / 400).astype(np.int64)
    c = _u(fx, fy, 22)
    doy = date.timetuple().tm_yday
    season = 0.3 + 0.7 * np.exp(-(((doy - 190) / 50) ** 2))
    veg = np.clip((0.55 + 0.4 * _u(fx, fy, 23)) * season + 0.5 * (n - 0.5), 0, 1)
    water, soil = c < 0.08, (c >= 0.08) & (c < 0.25)
    g = np.where(water, 0.0, np.where(soil, 0.1 * n, veg))
    return {"n": n, "g": g, "water": water, "soil": soil, "field": fx * 1_000_003 + fy}


_CLOUD = [0.46, 0.44, 0.43, 0.42, 0.43, 0.44, 0.44, 0.45, 0.44, 0.22, 0.12, 0.32, 0.22]


def cloud_threshold(date):
    """Step 1 of the documented cloud model: the day's threshold t, None on a clear day."""
    from datetime import datetime, timezone

    d = (date - datetime(1970, 1, 1, tzinfo=timezone.utc)).days
    q = float(_u(d, 0, 31))
    return None if q < 0.45 else 0.8 - 0.55 * (q - 0.45) / 0.55


def cloud_opacity(x, y, date):
    """Step 2 of the documented cloud model: opacity a at ground metres x, y."""
    from datetime import datetime, timezone

    import numpy as np

    t = cloud_threshold(date)
    if t is None:
        return np.zeros(np.shape(x))
    salt = 100000 + 2 * (date - datetime(1970, 1, 1, tzinfo=timezone.utc)).days
    f = 0.7 * _vn(x, y, 4000, salt) + 0.3 * _vn(x, y, 1200, salt + 1)
    return np.clip((f - t) / 0.1, 0, 1)


def sky(lon, lat, date):
    """Cloud opacity a and shadow a_s of the documented cloud model (docs/emulator.md)."""
    import numpy as np

    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    x = 6371008.8 * np.radians(lon) * np.cos(np.radians(lat))
    y = 6371008.8 * np.radians(lat)
    a = cloud_opacity(x, y, date)
    shadow = np.where(a > 0, 0.0, cloud_opacity(x + 600, y - 800, date))
    return a, shadow


def scene(name: str, lon, lat, date, dn: bool = False, clouds: bool = True):
    """The documented synthetic scene formula (docs/emulator.md), re-implemented here.

    ``clouds``: seen through the documented clouds (as an optical collection is by default).
    """
    import zlib

    import numpy as np

    s = surface(lon, lat, date)
    if name in _S2:
        b = _S2.index(name)
        land = _SOIL[b] + s["g"] * (_CANOPY[b] - _SOIL[b])
        r = np.where(s["water"], _WATER[b] + 0.01 * s["n"], land)
        if clouds:
            a, shadow = sky(lon, lat, date)
            r = (1 - a) * r * (1 - 0.6 * shadow) + a * _CLOUD[b]
    else:
        k = zlib.crc32(name.encode("utf-8")) % 16
        r = (0.1 + 0.02 * k) * (0.5 + s["g"]) + 0.02 * s["n"]
    return np.floor(r * 10000 + 0.5) if dn else r


def cloud_coverage(lon, lat, date):
    """Step 6 of the cloud model: % of CLM over the 1-degree cell of (lon, lat), 32 x 32."""
    import numpy as np

    if cloud_threshold(date) is None:
        return 0.0
    steps = (np.arange(32) + 0.5) / 32
    glon, glat = np.meshgrid(np.floor(lon) + steps, np.floor(lat) + steps)
    a, _ = sky(glon.ravel(), glat.ravel(), date)
    return round(100 * float(np.mean(a >= 0.4)), 2)


def centres(bbox, width: int, height: int):
    """Pixel-centre x/y grids (rows, cols) of the documented grid."""
    import numpy as np

    minx, miny, maxx, maxy = bbox
    a = (maxx - minx) / width
    e = -(maxy - miny) / height
    return np.meshgrid(minx + (np.arange(width) + 0.5) * a, maxy + (np.arange(height) + 0.5) * e)
