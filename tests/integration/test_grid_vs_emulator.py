"""The grid of every matrix case equals, exactly, the GeoTIFF the emulator delivers for its body.

Bodies go to the emulator over HTTP (token, create, status until 404); the delivered
``<row_url>/<request id>/<identifier>.tif`` is downloaded from the emulator's S3 and opened with
rasterio. Transform (compared with ==), width, height, CRS, band count and dtype must match the
spec's grid and outputs.
"""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path

import httpx
import pytest
import rasterio
import s3fs
from rasterio.io import MemoryFile

from xasync._contract import API_PATH_LEGACY


def _load_matrix():
    path = Path(__file__).resolve().parents[1] / "data" / "body_matrix.py"
    spec = importlib.util.spec_from_file_location("xasync_test_body_matrix", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_matrix = _load_matrix()
WAIT_LIMIT_S = 30.0


def _token(emu, http: httpx.Client) -> str:
    r = http.post(
        emu.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
        },
    )
    r.raise_for_status()
    return r.json()["access_token"]


def _run(emu, http: httpx.Client, bodies: list[dict]) -> list[str]:
    """Create the requests in waves no larger than the concurrency limit; wait for each 404."""
    url = f"{emu.base_url}{API_PATH_LEGACY}"
    ids: list[str] = []
    wave = max(1, emu.concurrency_limit)
    for start in range(0, len(bodies), wave):
        batch = []
        for body in bodies[start : start + wave]:
            r = http.post(url, json=body)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "RUNNING"
            batch.append(r.json()["id"])
        deadline = time.monotonic() + WAIT_LIMIT_S
        pending = set(batch)
        while pending:
            assert time.monotonic() < deadline, f"requests {pending} still running"
            time.sleep(0.1)
            for rid in list(pending):
                s = http.get(f"{url}/{rid}")
                if s.status_code == 404:
                    pending.discard(rid)
                else:
                    assert s.status_code == 200, s.text
                    assert s.json()["status"] == "RUNNING"
        ids.extend(batch)
    return ids


def test_matrix_grids_match_delivered_geotiffs(emu):
    bucket = emu.create_bucket(f"grid-{uuid.uuid4().hex[:10]}").removeprefix("s3://")
    so = emu.storage_options
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**so)
    delivery_creds = {"accessKey": so["key"], "secretAccessKey": so["secret"]}

    specs = []
    for case in _matrix.MATRIX:
        case = dict(case)
        if "script_source" in case:  # evalscript reference: store it where the emulator reads it
            url = f"s3://{bucket}/scripts/{case['id']}.js"
            fs.pipe(url, case["script_source"].encode())
            case["evalscript"] = url
            case["storage_options"] = so
        specs += _matrix.build_case(case, delivery=f"s3://{bucket}/matrix/{case['id']}")
    assert len(specs) >= 25

    with httpx.Client(timeout=30.0) as http:
        http.headers["Authorization"] = f"Bearer {_token(emu, http)}"
        request_ids = _run(emu, http, [s.body(delivery_creds) for s in specs])

    checked = 0
    for spec, rid in zip(specs, request_ids, strict=True):
        by_id = {o.id: o for o in spec.outputs}
        for ident in spec.responses:
            data = fs.cat(f"{spec.row_url}/{rid}/{ident}.tif")
            with MemoryFile(data) as mem, mem.open() as ds:
                where = f"{spec.label!r} of {spec.row_url} ({ident})"
                assert ds.transform == spec.grid.transform, where
                assert (ds.width, ds.height) == (spec.grid.width, spec.grid.height), where
                assert ds.crs == rasterio.crs.CRS.from_epsg(spec.grid.epsg), where
                assert ds.count == by_id[ident].bands, where
                assert set(ds.dtypes) == {by_id[ident].dtype}, where
                checked += 1
    assert checked >= len(specs)


@pytest.mark.parametrize("res", [10, 20, 60])
def test_neighbouring_rows_share_one_grid_in_delivered_files(emu, res):
    """Two touching fields at the same resolution: their delivered pixels align exactly."""
    import geopandas as gpd
    from shapely.geometry import box

    bucket = emu.create_bucket(f"nbr-{uuid.uuid4().hex[:10]}").removeprefix("s3://")
    so = emu.storage_options
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**so)
    gdf = gpd.GeoDataFrame(
        geometry=[box(14.500, 46.04, 14.5071, 46.047), box(14.5071, 46.04, 14.5133, 46.0455)],
        crs=4326,
    )
    specs = _matrix.build_case(
        {"id": "nbr", "gdf": gdf, "crs": "utm", "resolution": res},
        delivery=f"s3://{bucket}/nbr",
    )
    with httpx.Client(timeout=30.0) as http:
        http.headers["Authorization"] = f"Bearer {_token(emu, http)}"
        rids = _run(
            emu,
            http,
            [s.body({"accessKey": so["key"], "secretAccessKey": so["secret"]}) for s in specs],
        )
    transforms = []
    for spec, rid in zip(specs, rids, strict=True):
        with MemoryFile(fs.cat(f"{spec.row_url}/{rid}/default.tif")) as mem, mem.open() as ds:
            transforms.append(ds.transform)
    a, b = transforms
    assert (a.a, a.e) == (res, -res)
    assert (b.a, b.e) == (res, -res)
    # Origins differ by whole pixels: the two files are on one grid.
    assert ((b.c - a.c) / res) == round((b.c - a.c) / res)
    assert ((b.f - a.f) / res) == round((b.f - a.f) / res)
