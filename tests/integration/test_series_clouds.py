"""A season through the clouds (issue 14): an evalscript masking ``CLM`` gives, per interval,
numpy's median over the documented model's clear samples; an interval with only clouds is NaN.
"""

from __future__ import annotations

import sys
import warnings
from datetime import timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import xasync
from xasync.temporal import make_intervals

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "emulator"))
from emu_helpers import centres, s2_scene_dates, scene, sky

UTC = timezone.utc
BOUNDS = (13.0, 45.0, 13.1, 45.08)  # ~8 x 9 km: clouds cover parts of it
SIZE = (24, 20)
TIME = ("2023-06-01", "2023-07-31")
MASKED = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "CLM", "dataMask"],
          output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) {
  if (s.CLM === 1) return [NaN];
  return [(s.B08 - s.B04) / (s.B08 + s.B04)];
}
"""


def _expected(intervals):
    """Per interval: numpy's nanmedian of the NDVI of the clear samples (CLM 0) of its scenes."""
    lon, lat = centres(BOUNDS, *SIZE)
    out, cloudy = [], 0
    for iv in intervals:
        t0 = iv.start.tz_localize(UTC).to_pydatetime()
        t1 = pd.Timestamp(iv.time_range[1]).to_pydatetime()
        stack = []
        for d in s2_scene_dates(t0, t1):
            b4, b8 = scene("B04", lon, lat, d), scene("B08", lon, lat, d)
            clear = sky(lon, lat, d)[0] < 0.4
            cloudy += int((~clear).sum())
            stack.append(np.where(clear, (b8 - b4) / (b8 + b4), np.nan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: NaN expected
            out.append(np.nanmedian(np.array(stack), axis=0))
    return out, cloudy


def test_cloud_masked_median_is_numpy_nanmedian_of_clear_scenes(emu):
    root = emu.create_bucket(f"tsc-{np.random.default_rng().integers(1e9)}")
    gdf = gpd.GeoDataFrame(geometry=[shapely.box(*BOUNDS)], crs=4326, index=["f"])
    client = xasync.Client.from_emulator(emu)
    try:
        res = gdf.xasync.process(
            MASKED,
            time=TIME,
            freq="10D",
            size=SIZE,
            delivery=f"{root}/clouds",
            storage_options=emu.storage_options,
            client=client,
        )
        res.wait(timeout=180, progress=False)
        got = res["f"]["ndvi"].values
    finally:
        client.close()
    intervals = make_intervals(TIME, "10D")
    expected, cloudy = _expected(intervals)
    assert cloudy > 0  # the season has clouds over this field
    assert got.shape == (len(intervals), SIZE[1], SIZE[0])
    for k, exp in enumerate(expected):
        np.testing.assert_allclose(got[k], np.broadcast_to(exp, got[k].shape), rtol=1e-5)
