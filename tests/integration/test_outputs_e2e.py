"""#16 finding 6: outputs= overrides are checked against the delivered file when reading."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

import xasync
from xasync.errors import OutputMismatchError

from ._shared import NDVI_NO_MASK

NDVI = NDVI_NO_MASK


@pytest.mark.parametrize(
    ("override", "what", "declared", "delivered"),
    [
        ({"bands": 3, "sampleType": "FLOAT32"}, "bands", 3, 1),
        ({"bands": 1, "sampleType": "UINT8"}, "dtype", "uint8", "float32"),
    ],
    ids=["3-bands-over-1", "uint8-over-float32"],
)
def test_declared_outputs_unlike_the_delivery_raise(emu, override, what, declared, delivered):
    emu.configure(processing_seconds=0.05)
    root = emu.create_bucket(f"outs-{np.random.default_rng().integers(1e9)}")
    gdf = gpd.GeoDataFrame(geometry=[box(14.0, 49.0, 14.004, 49.003)], crs=4326)
    with xasync.Client.from_emulator(emu) as client:
        results = gdf.xasync.process(
            NDVI,
            time=("2024-06-01", "2024-06-30"),
            resolution=10,
            crs="utm",
            delivery=f"{root}/o",
            storage_options=emu.storage_options,
            client=client,
            outputs={"ndvi": override},
        ).wait(timeout=120, progress=False)
        with pytest.raises(OutputMismatchError) as info:
            results[0]["ndvi"].compute()
    err = info.value
    assert (err.output, err.what, err.declared, err.delivered) == (
        "ndvi",
        what,
        declared,
        delivered,
    )
    assert "ndvi" in str(err) and str(declared) in str(err) and str(delivered) in str(err)
