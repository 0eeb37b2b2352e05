"""Pieces of the pack-reuse tests: 12 fields in two clusters, and a call that waits."""

from __future__ import annotations

import geopandas as gpd
from shapely.geometry import box

from ._shared import NDVI, TIME

__all__ = ["NDVI", "PACK", "TIME", "WAIT_S", "creates", "pack_fields", "run_and_wait"]

WAIT_S = 300
#: Two clusters farther apart than this: two to four packs.
PACK = {"pack": True, "pack_max_px": 400}


def pack_fields() -> gpd.GeoDataFrame:
    """12 small fields in two clusters (farther apart than ``pack_max_px=400``)."""
    geoms = []
    for lon0, lat0 in ((14.0, 46.0), (14.3, 46.2)):
        for i in range(6):
            x, y = lon0 + 0.003 * (i % 3), lat0 + 0.002 * (i // 3)
            geoms.append(box(x, y, x + 0.0012, y + 0.0009).buffer(0.0002, quad_segs=2))
    return gpd.GeoDataFrame(geometry=geoms, crs=4326, index=[f"field-{i}" for i in range(12)])


def run_and_wait(gdf, emu, client, delivery, *, mask=True, **kw):
    """``process`` NDVI at 10 m (UTM) into ``delivery`` and wait until every row is final."""
    res = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=10,
        crs="utm",
        mask=mask,
        delivery=delivery,
        storage_options=emu.storage_options,
        client=client,
        **kw,
    )
    assert res.wait(timeout=WAIT_S, progress=False) is not None
    return res


def creates(emu) -> int:
    """Requests the emulator accepted since its reset."""
    return int(emu.stats["creates"])
