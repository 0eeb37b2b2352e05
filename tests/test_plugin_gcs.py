"""The pytest plugin's GCS fixtures: a user's pipeline delivering to ``gs://`` on the emulator."""

from __future__ import annotations

import os

import geopandas as gpd
import pytest
from shapely.geometry import box

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
gcsfs = pytest.importorskip("gcsfs", reason="gcsfs (xasync[gcs]) reads gs:// deliveries")

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""


def test_gcs_fixtures_run_a_pipeline(
    xasync_client, xasync_gcs_bucket, xasync_gcs_storage_options, xasync_gcs_credentials
):
    assert xasync_gcs_bucket.startswith("gs://")
    fs = gcsfs.GCSFileSystem(**xasync_gcs_storage_options)
    assert fs.ls(xasync_gcs_bucket[5:]) == []  # fresh and empty
    gdf = gpd.GeoDataFrame(geometry=[box(14.0, 46.0, 14.004, 46.003)], crs=4326)
    results = gdf.xasync.process(
        NDVI,
        time=("2024-06-01", "2024-06-30"),
        resolution=0.0002,
        delivery=f"{xasync_gcs_bucket}/ndvi",
        storage_options=xasync_gcs_storage_options,
        gcs_credentials=xasync_gcs_credentials,
        client=xasync_client,
    )
    results.wait(timeout=120, progress=False)
    assert results.status()["state"].tolist() == ["done"]
    ndvi = results[0]["ndvi"].values
    assert ndvi.shape == (15, 20) and float(abs(ndvi).max()) > 0
    assert fs.find(f"{xasync_gcs_bucket[5:]}/ndvi")  # the delivery landed in that bucket
    assert xasync_gcs_credentials["private_key"] not in repr(results.status())


def test_gcs_buckets_are_fresh_per_test(xasync_gcs_bucket, xasync_gcs_storage_options):
    fs = gcsfs.GCSFileSystem(**xasync_gcs_storage_options)
    assert fs.ls(xasync_gcs_bucket[5:]) == []
