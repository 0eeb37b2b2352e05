"""Graph keys of lazy Datasets: the same in every process, distinct wherever the tasks differ.

Keys are an MD5 digest of the call's shared parts (tokenized once) and of each row's
short tuple; these tests pin what must stay distinct and what must stay equal.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from shapely.geometry import box

from xasync import lazy
from xasync.grid import PixelGrid
from xasync.lazy import build_dataset
from xasync.mosaic import build_mosaic
from xasync.plan import OutputPlan, ReadPlan
from xasync.planned import Source
from xasync.reader import ReaderConfig

GRID = PixelGrid(32633, (500_000.0, 4_999_000.0, 500_400.0, 5_000_000.0), 40, 100)
OUTPUTS = (OutputPlan("ndvi", 1, "float32"), OutputPlan("rgb", 3, "uint8", nodata=0.0))
PLAN = ReadPlan(
    "a" * 64, "s3://b/p/" + "a" * 16, GRID, OUTPUTS, label="row-0", time_range=("x", "y")
)

SCRIPT = """
from xasync.grid import PixelGrid
from xasync.lazy import build_dataset
from xasync.plan import OutputPlan, ReadPlan
from xasync.reader import ReaderConfig
grid = PixelGrid(32633, (500_000.0, 4_999_000.0, 500_400.0, 5_000_000.0), 40, 100)
outputs = (OutputPlan("ndvi", 1, "float32"), OutputPlan("rgb", 3, "uint8", nodata=0.0))
plan = ReadPlan("a" * 64, "s3://b/p/" + "a" * 16, grid, outputs, label="row-0",
                time_range=("x", "y"))
ds = build_dataset(plan, reader=ReaderConfig(), chunks=16)
print(sorted(map(str, ds.__dask_graph__())))
"""


def keys(ds: xr.Dataset) -> set[str]:
    return {str(k) for k in ds.__dask_graph__()}


def test_keys_are_the_same_in_another_process():
    here = build_dataset(PLAN, reader=ReaderConfig(), chunks=16)
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(keys(here)))


@pytest.mark.parametrize(
    "change",
    [
        {"token": "b" * 64},
        {"row_url": "s3://b/q/" + "a" * 16},
        {"label": "row-1"},
        {"time_range": ("x", "z")},
        {"grid": dataclasses.replace(GRID, bbox=(500_010.0, 4_999_000.0, 500_410.0, 5_000_000.0))},
        {"outputs": (OutputPlan("ndvi", 1, "float64"), OUTPUTS[1])},
        {"outputs": (OUTPUTS[0], OutputPlan("rgb", 3, "uint8", nodata=255.0))},
        {"mask_wkb": box(500_000, 4_999_000, 500_200, 5_000_000).wkb},
    ],
    ids=["token", "row_url", "label", "time", "grid", "dtype", "nodata", "mask"],
)
def test_any_difference_of_the_row_changes_every_key(change):
    a = build_dataset(PLAN, reader=ReaderConfig(), chunks=16)
    b = build_dataset(dataclasses.replace(PLAN, **change), reader=ReaderConfig(), chunks=16)
    assert not keys(a) & keys(b)


def test_masks_reader_settings_chunks_and_waits_give_other_keys():
    config = ReaderConfig()
    base = keys(build_dataset(PLAN, reader=config, chunks=16))
    m1 = dataclasses.replace(PLAN, mask_wkb=box(500_000, 4_999_000, 500_200, 5_000_000).wkb)
    m2 = dataclasses.replace(PLAN, mask_wkb=box(500_000, 4_999_000, 500_300, 5_000_000).wkb)
    others = [
        keys(build_dataset(m1, reader=config, chunks=16)),
        keys(build_dataset(m2, reader=config, chunks=16)),
        keys(build_dataset(PLAN, reader=ReaderConfig(block_size=1 << 20), chunks=16)),
        keys(build_dataset(PLAN, reader=config, chunks=32)),
        keys(build_dataset(PLAN, reader=config, chunks=16, wait_timeout=5.0)),
        keys(build_dataset(PLAN, reader=config, chunks=16, poll_interval=0.5)),
    ]
    for i, one in enumerate([base, *others]):
        for other in [base, *others][i + 1 :]:
            assert not one & other
    assert base == keys(build_dataset(PLAN, reader=ReaderConfig(), chunks=16))


def test_mosaic_keys_differ_by_source_window():
    """Two rows of one pack on the same grid but other windows: distinct keys."""
    pack = PixelGrid(32633, (500_000.0, 4_999_000.0, 500_800.0, 5_000_000.0), 80, 100)
    plan = dataclasses.replace(PLAN, outputs=OUTPUTS[:1])
    left = Source("p" * 64, "s3://b/p/pack", pack, (0, 0, 100, 40), (0, 0, 100, 40), "pack")
    right = dataclasses.replace(left, window=(0, 40, 100, 40))
    a = build_mosaic(plan, [left], reader=ReaderConfig(), chunks=16)
    b = build_mosaic(plan, [right], reader=ReaderConfig(), chunks=16)
    again = build_mosaic(plan, [left], reader=ReaderConfig(), chunks=16)
    assert not keys(a) & keys(b)
    assert keys(a) == keys(again)


def test_fast_index_equals_the_public_index(monkeypatch):
    """``lazy._indexed_coord`` gives what pandas and xarray build publicly; .sel works."""
    fast = build_dataset(PLAN, reader=ReaderConfig(), chunks=16)
    monkeypatch.setattr(lazy, "FAST_INDEX", False)
    slow = build_dataset(PLAN, reader=ReaderConfig(), chunks=16)
    xr.testing.assert_identical(fast, slow)
    for derive in (
        lambda d: pickle.loads(pickle.dumps(d)),
        lambda d: d.copy(deep=True),
        lambda d: d.isel(x=slice(2, 5)),
        lambda d: d.sortby("y"),
        lambda d: d.reindex(x=d.x.values[::-1]),
        lambda d: d.assign_coords(x=d.x + 1.0),
        lambda d: xr.concat([d, d], "time"),
    ):
        xr.testing.assert_identical(derive(fast), derive(slow))
    for name in ("x", "y", "band"):
        a, b = fast.xindexes[name], slow.xindexes[name]
        assert type(a) is type(b) and a.equals(b) and a.coord_dtype == b.coord_dtype
        pa, pb = a.to_pandas_index(), b.to_pandas_index()
        assert type(pa) is type(pb) and pa.dtype == pb.dtype and pa.name == pb.name == name
        pd.testing.assert_index_equal(pa, pb)
        assert type(fast[name].variable) is type(slow[name].variable)
        assert fast[name].values.dtype == slow[name].values.dtype
        assert not fast[name].values.flags.writeable
    x, y = float(fast.x[7]), float(fast.y[3])
    point = fast.sel(x=x, y=y)
    assert point["ndvi"].shape == () and point["rgb"].shape == (3,)
    window = fast.sel(x=slice(x, x + 50.0), y=slice(y, y - 50.0))
    assert window.sizes["x"] == 6 and window.sizes["y"] == 6
    assert np.array_equal(fast.x.values, GRID.x_coords())
    assert fast.rio.transform() == slow.rio.transform() == GRID.transform


def test_output_checks_are_cached_but_raise_every_time():
    """Outputs are checked once per outputs tuple; a bad tuple raises at each call, and a
    list of outputs (unhashable) is checked without the cache."""
    from xasync.errors import ValidationError

    dup = (OutputPlan("a", 1, "uint8"), OutputPlan("a", 2, "uint8"))
    zero = (OutputPlan("a", 0, "uint8"),)
    for outputs in (dup, dup, zero, zero, (OutputPlan("a", 1, "no-such-dtype"),)):
        with pytest.raises((ValidationError, TypeError)):
            build_dataset(dataclasses.replace(PLAN, outputs=outputs), reader=ReaderConfig())
    as_list = dataclasses.replace(PLAN, outputs=list(OUTPUTS))
    a = build_dataset(as_list, reader=ReaderConfig(), chunks=16)
    b = build_dataset(PLAN, reader=ReaderConfig(), chunks=16)
    xr.testing.assert_identical(a, b)
    masked = dataclasses.replace(PLAN, mask_wkb=box(500_000, 4_999_000, 500_200, 5_000_000).wkb)
    m = build_dataset(masked, reader=ReaderConfig(), chunks=16)
    assert m["rgb"].dtype == np.float32 and b["rgb"].dtype == np.uint8  # masked: float values
