"""The end of a call (:mod:`xasync.callsubmit`) and the garbage-collector pause of ``process``."""

from __future__ import annotations

import gc

import geopandas as gpd
import pytest
from shapely.geometry import box

from xasync.callsubmit import Call
from xasync.errors import OptionError
from xasync.processing import process

NDVI = """//VERSION=3
function setup() { return {input: ["B04"], output: {id: "a", bands: 1}}; }
function evaluatePixel(s) { return [s.B04]; }
"""


def _gdf() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[box(14.0, 46.0, 14.001, 46.001)], crs=4326)


def test_process_restores_the_garbage_collector_on_error():
    assert gc.isenabled()
    with pytest.raises(OptionError):
        process(_gdf(), NDVI, resolution=10, delivery=None)
    assert gc.isenabled()


def test_process_leaves_a_disabled_collector_disabled():
    gc.disable()
    try:
        with pytest.raises(OptionError):
            process(_gdf(), NDVI, resolution=10, delivery=None)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_call_repr_holds_no_secret():
    call = Call(
        fs=None,
        root="s3://bucket/p",
        specs=[],
        plans=[],
        labels=[],
        s3_extras={"accessKey": "AKIA-SECRET", "secretAccessKey": "TOPSECRET"},
    )
    text = repr(call)
    assert "SECRET" not in text and "s3://bucket/p" in text
