"""Shared pieces of the reliability tests: a small evalscript, field geometries, clients."""

from __future__ import annotations

import uuid

import geopandas as gpd
from shapely.geometry import box

import xasync

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""

TIME = ("2024-06-01", "2024-06-30")
#: 0.0002 deg pixels: each field is a ~24 x 19 px raster (cheap to make and to read)
RES = 0.0002


def fields(n: int, *, lon0: float = 14.0, lat0: float = 46.0) -> gpd.GeoDataFrame:
    """``n`` small polygons in EPSG:4326, labelled ``field-<i>``."""
    geoms = []
    for i in range(n):
        x, y = lon0 + 0.01 * (i % 25), lat0 + 0.01 * (i // 25)
        geoms.append(box(x, y, x + 0.004, y + 0.003))
    return gpd.GeoDataFrame(
        {"name": [f"f{i}" for i in range(n)]},
        geometry=geoms,
        crs=4326,
        index=[f"field-{i}" for i in range(n)],
    )


def fresh_root(emu, tag: str) -> str:
    """A new bucket on the emulator's S3 server."""
    return emu.create_bucket(f"rel-{tag}-{uuid.uuid4().hex[:10]}")


def learning_client(emu, *, new_account: bool = True) -> xasync.Client:
    """A client that does NOT know the account's concurrency limit (it must learn it).

    ``new_account`` makes a fresh OAuth2 client at the emulator, so that no limit learned by an
    earlier test (the submitter is process-wide and keys accounts by client id) is reused.
    """
    client_id, client_secret = (
        emu.add_client() if new_account else (emu.client_id, emu.client_secret)
    )
    return xasync.Client(
        base_url=emu.base_url,
        token_url=emu.token_url,
        client_id=client_id,
        client_secret=client_secret,
    )


def assert_no_duplicate_creates(stats: dict, n_rows: int) -> None:
    """Every row prefix was bought exactly once, and nothing else was bought."""
    by_prefix = stats["creates_by_prefix"]
    dup = {k: v for k, v in by_prefix.items() if v != 1}
    assert not dup, f"prefixes bought more than once: {dup}"
    assert len(by_prefix) == n_rows, (len(by_prefix), n_rows)
    assert stats["creates"] == n_rows, stats
