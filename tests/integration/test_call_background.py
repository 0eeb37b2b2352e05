"""A big call returns before its manifest is written (issue 17, P4): the manifest is still in
S3 before the first request is created, a refused write buys nothing, a wrong bucket still
raises at the call. ``BACKGROUND_ROWS`` is lowered so that a few rows take the big-call path.
"""

from __future__ import annotations

import threading

import geopandas as gpd
import numpy as np
import pytest
import s3fs
from shapely.geometry import box

from xasync import callsubmit
from xasync.errors import DeliveryAccessError
from xasync.manifests import read_manifests

from ._shared import NDVI_NO_MASK, TIME, fields
from ._shared import process_ndvi as _process


@pytest.fixture
def big_call(e2e, monkeypatch):
    """The emulator, client and bucket; every call of 2 rows or more takes the big-call path."""
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 2)
    e2e[0].configure(concurrency_limit=4, processing_seconds=0.3)
    return e2e


def test_manifest_is_in_s3_before_the_first_create(big_call, monkeypatch):
    emu, client, root = big_call
    real = callsubmit.write_manifest_text
    seen: list[int] = []
    written = threading.Event()

    def spy(*args, **kwargs):  # the real write, with the creates counted at that moment
        seen.append(emu.stats["creates"])
        url = real(*args, **kwargs)
        written.set()
        return url

    monkeypatch.setattr(callsubmit, "write_manifest_text", spy)
    gdf = fields(5)
    results = _process(gdf, emu, client, f"{root}/bg")
    results.wait(timeout=120, progress=False)
    assert written.is_set() and seen == [0]  # written once, before anything was created
    assert emu.stats["creates"] == 5
    fs = s3fs.S3FileSystem(**emu.storage_options)
    (doc,) = read_manifests(fs, f"{root}/bg")
    assert [row["plan"]["token"] for row in doc["rows"]] == [r.token for r in results.job.rows]
    assert [row["position"] for row in doc["rows"]] == list(range(5))
    assert np.isfinite(results[0].ndvi.values).any()


def test_same_manifest_as_a_small_call(big_call, monkeypatch):
    """The background path writes the very rows the synchronous path writes."""
    emu, client, root = big_call
    gdf = fields(4)
    fs = s3fs.S3FileSystem(**emu.storage_options)
    _process(gdf, emu, client, f"{root}/same").wait(timeout=120, progress=False)
    (background,) = read_manifests(fs, f"{root}/same")
    fs.rm(f"{root}/same/_xasync", recursive=True)
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 10**9)
    _process(gdf, emu, client, f"{root}/same").wait(timeout=120, progress=False)
    (synchronous,) = read_manifests(fs, f"{root}/same")
    assert background["rows"] == synchronous["rows"]
    assert background["call_token"] == synchronous["call_token"]
    assert emu.stats["creates"] == 4  # the second call bought nothing again


@pytest.fixture
def refused_manifest(monkeypatch):
    """The write check passes but the manifest's PUT is refused (e.g. a bucket policy on its
    size, which moto does not enforce: injected)."""

    def refused(*args, **kwargs):
        raise PermissionError("Access Denied")

    monkeypatch.setattr(callsubmit, "write_manifest_text", refused)


def _assert_nothing_bought(results, emu) -> None:
    """``wait`` raises the refused write; every row failed, bought nothing, shows no secret."""
    with pytest.raises(DeliveryAccessError, match="cannot write to the delivery location"):
        results.wait(timeout=120, progress=False)
    status = results.status()
    assert (status["state"] == "failed").all(), status
    assert status["error"].str.contains("nothing was bought").all()
    assert emu.stats["creates"] == 0
    assert all(emu.storage_options["secret"] not in str(e) for e in status["error"])


def test_a_refused_manifest_write_buys_nothing(big_call, refused_manifest):
    """Nothing is bought, rows fail, wait raises."""
    emu, client, root = big_call
    results = _process(fields(3), emu, client, f"{root}/refused")
    _assert_nothing_bought(results, emu)
    with pytest.raises(Exception, match="nothing was bought"):
        results[0].ndvi.values  # noqa: B018  (computing a row raises at once)


def test_a_wrong_bucket_still_raises_at_the_call(big_call):
    emu, client, root = big_call
    with pytest.raises(DeliveryAccessError, match="cannot write to the delivery location"):
        _process(fields(3), emu, client, "s3://no-such-bucket-xasync/p")
    assert emu.stats["creates"] == 0


def test_cancelled_before_the_hand_over_buys_nothing(big_call, monkeypatch):
    emu, client, root = big_call
    real, cancelled = callsubmit.write_manifest_text, threading.Event()

    def held(*args, **kwargs):  # the background write waits until the test cancelled
        assert cancelled.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(callsubmit, "write_manifest_text", held)
    results = _process(fields(4), emu, client, f"{root}/cancelled")
    results.cancel()  # before the background thread handed the rows over
    cancelled.set()
    results.wait(timeout=120, progress=False)
    status = results.status()
    assert emu.stats["creates"] == 0
    assert (status["state"] == "failed").all(), status
    assert status["error"].str.contains("nothing was bought").all()
    fs = s3fs.S3FileSystem(**emu.storage_options)
    (doc,) = read_manifests(fs, f"{root}/cancelled")  # written all the same
    assert len(doc["rows"]) == 4


def test_a_big_call_to_gcs_writes_its_manifest_in_the_background(emu, monkeypatch):
    import os

    import xasync

    if "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT" not in os.environ:
        monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    gcsfs = pytest.importorskip("gcsfs", reason="gcsfs (xasync[gcs]) reads gs:// deliveries")
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 2)
    emu.configure(concurrency_limit=4, processing_seconds=0.2)
    client = xasync.Client.from_emulator(emu)
    root = emu.create_gcs_bucket(f"gcs-{os.urandom(5).hex()}")
    try:
        results = fields(3).xasync.process(
            NDVI_NO_MASK,
            time=TIME,
            resolution=0.0002,
            delivery=f"{root}/bg",
            storage_options=emu.gcs_storage_options,
            gcs_credentials=emu.gcs_credentials,
            client=client,
        )
        results.wait(timeout=120, progress=False)
    finally:
        client.close()
    assert (results.status()["state"] == "done").all()
    fs = gcsfs.GCSFileSystem(**emu.gcs_storage_options)
    (doc,) = read_manifests(fs, f"{root}/bg")
    assert [row["plan"]["token"] for row in doc["rows"]] == [r.token for r in results.job.rows]
    assert fs.exists(f"{root}/bg/_xasync/{callsubmit.WRITE_CHECK_NAME}")


# -- planned calls (packs, tiles) take the same path ---------------------------------------------
def _clustered() -> gpd.GeoDataFrame:
    """12 small fields in two clusters: 2 to 4 packed requests with ``pack_max_px=400``."""
    geoms = []
    for lon0, lat0 in ((14.0, 46.0), (14.3, 46.2)):
        for i in range(6):
            x, y = lon0 + 0.003 * (i % 3), lat0 + 0.002 * (i // 3)
            geoms.append(box(x, y, x + 0.0012, y + 0.0009))
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"field-{i}" for i in range(12)])


def _planned(gdf, emu, client, delivery, **kw):
    kw = {"crs": "utm", "resolution": 10, "mask": True, "pack": True, "pack_max_px": 400, **kw}
    return gdf.xasync.process(
        NDVI_NO_MASK,
        time=TIME,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )


def test_a_packed_call_writes_its_manifest_in_the_background_before_any_create(
    big_call, monkeypatch
):
    emu, client, root = big_call
    real, release = callsubmit.write_manifest_text, threading.Event()
    seen: list[int] = []

    def held(*args, **kwargs):  # the write waits for the test: the call returned without it
        assert release.wait(60)
        seen.append(emu.stats["creates"])
        return real(*args, **kwargs)

    monkeypatch.setattr(callsubmit, "write_manifest_text", held)
    results = _planned(_clustered(), emu, client, f"{root}/packed")
    fs = s3fs.S3FileSystem(**emu.storage_options)
    assert read_manifests(fs, f"{root}/packed") == []  # returned before the manifest
    assert (results.status()["state"] == "queued").all()
    release.set()
    results.wait(timeout=120, progress=False)
    status = results.status()
    assert (status["state"] == "done").all(), status
    requests = status["requests"].nunique()
    assert 2 <= requests <= 4 and emu.stats["creates"] == requests
    assert seen == [0]  # written once, before the first create
    (doc,) = read_manifests(fs, f"{root}/packed")
    assert [row["plan"]["token"] for row in doc["rows"]] == [r.token for r in results.job.rows]
    assert all(row.get("sources") for row in doc["rows"])  # the packs each row is read from
    assert np.isfinite(results[0].ndvi.values).any()


def test_a_packed_call_writes_the_manifest_of_a_small_call(big_call, monkeypatch):
    emu, client, root = big_call
    fs = s3fs.S3FileSystem(**emu.storage_options)
    _planned(_clustered(), emu, client, f"{root}/same").wait(timeout=120, progress=False)
    (background,) = read_manifests(fs, f"{root}/same")
    bought = emu.stats["creates"]
    fs.rm(f"{root}/same/_xasync", recursive=True)
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 10**9)
    again = _planned(_clustered(), emu, client, f"{root}/same")
    again.wait(timeout=120, progress=False)
    (synchronous,) = read_manifests(fs, f"{root}/same")
    assert background["rows"] == synchronous["rows"]
    assert background["call_token"] == synchronous["call_token"]
    assert emu.stats["creates"] == bought  # the second call bought nothing again


@pytest.mark.parametrize("kw", [{}, {"pack": False, "max_request_px": 300}], ids=["packs", "tiles"])
def test_a_refused_manifest_write_of_a_planned_call_buys_nothing(
    big_call, monkeypatch, refused_manifest, kw
):
    emu, client, root = big_call
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 1)  # the county is one row
    gdf = _clustered() if kw == {} else _county()
    _assert_nothing_bought(_planned(gdf, emu, client, f"{root}/refused", **kw), emu)


def test_a_tiled_call_writes_its_manifest_in_the_background(big_call, monkeypatch):
    monkeypatch.setattr(callsubmit, "BACKGROUND_ROWS", 1)
    emu, client, root = big_call
    results = _planned(_county(), emu, client, f"{root}/tiled", pack=False, max_request_px=300)
    results.wait(timeout=120, progress=False)
    status = results.status()
    assert (status["state"] == "done").all(), status
    assert emu.stats["creates"] == len(status["requests"].iloc[0].split()) == 4
    fs = s3fs.S3FileSystem(**emu.storage_options)
    (doc,) = read_manifests(fs, f"{root}/tiled")
    assert len(doc["rows"][0]["sources"]) == 4
    assert fs.exists(f"{root}/tiled/_xasync/{callsubmit.WRITE_CHECK_NAME}")


def _county() -> gpd.GeoDataFrame:
    """One row of about 500 x 450 px at 10 m: 4 tiles with ``max_request_px=300``."""
    return gpd.GeoDataFrame(geometry=[box(500000, 4000000, 505000, 4004500)], crs=32633)
