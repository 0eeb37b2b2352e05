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


def wait_gone(api: httpx.Client, request_id: str, timeout: float = 20.0) -> float:
    """Poll status until 404; return the seconds it took. Fails the test on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = api.get(f"{LEGACY}/{request_id}")
        if r.status_code == 404:
            return time.monotonic() - t0
        assert r.status_code == 200, r.text
        time.sleep(0.05)
    pytest.fail(f"request {request_id} still RUNNING after {timeout} s")


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


def scene(name: str, lon, lat, date, dn: bool = False):
    """The documented synthetic scene formula (docs/emulator.md), re-implemented here."""
    import zlib

    import numpy as np

    vegetation = {"B01": 0.03, "B02": 0.04, "B03": 0.07, "B04": 0.05, "B05": 0.11, "B06": 0.25}
    vegetation.update({"B07": 0.30, "B08": 0.33, "B8A": 0.35, "B09": 0.35, "B10": 0.01})
    vegetation.update({"B11": 0.20, "B12": 0.10})
    k = zlib.crc32(name.encode("utf-8")) % 16
    doy = date.timetuple().tm_yday
    base = vegetation.get(name, 0.1 + 0.02 * k)
    v = (0.5 + 0.5 * np.sin(50 * np.radians(lon) + k)) * (0.5 + 0.5 * np.cos(50 * np.radians(lat)))
    r = base * (0.5 + v) + 0.05 * doy / 366
    return np.floor(r * 10000 + 0.5) if dn else r


def centres(bbox, width: int, height: int):
    """Pixel-centre x/y grids (rows, cols) of the documented grid."""
    import numpy as np

    minx, miny, maxx, maxy = bbox
    a = (maxx - minx) / width
    e = -(maxy - miny) / height
    return np.meshgrid(minx + (np.arange(width) + 0.5) * a, maxy + (np.arange(height) + 0.5) * e)
