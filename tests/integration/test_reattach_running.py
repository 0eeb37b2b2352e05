"""Re-attaching to a delivery (issue 12 item 5, issue 16 finding 8).

* ``open_delivery`` from another session while the requests still run, with and without a
  client: it follows them until they end (no client: in S3), buys nothing, and reads the values.
* Labels come back with their types (Timestamps, MultiIndex tuples) and ``cost_pu`` is what the
  delivered requests were charged.

Requests are held RUNNING by the emulator until the other session follows them (``emu.hold``);
with an emulator that has no hold knob, a long processing time stands in for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import xasync

from ._shared import NDVI_NO_MASK, TIME
from ._shared import fields as shared_fields

NDVI = NDVI_NO_MASK
RUNNER = Path(__file__).with_name("reattach_runner.py")


def fields(n: int, index=None) -> gpd.GeoDataFrame:
    return shared_fields(n, lon0=15.0, lat0=45.0, index=index)


def _runner(emu, delivery: str, *, with_client: bool) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        XASYNC_RA_STORAGE_OPTIONS=json.dumps(emu.storage_options),
        XASYNC_RA_DELIVERY=delivery,
        PYTHONPATH=os.pathsep.join(
            [str(Path(xasync.__file__).parents[1]), env.get("PYTHONPATH", "")]
        ),
    )
    if with_client:
        env.update(
            XASYNC_RA_BASE_URL=emu.base_url,
            XASYNC_RA_TOKEN_URL=emu.token_url,
            XASYNC_RA_CLIENT_ID=emu.client_id,
            XASYNC_RA_CLIENT_SECRET=emu.client_secret,
        )
    return subprocess.Popen(
        [sys.executable, str(RUNNER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("with_client", [False, True], ids=["no-client", "client"])
def test_reattach_while_requests_run(e2e, with_client):
    emu, client, root = e2e
    holding = hasattr(emu, "hold")
    emu.configure(concurrency_limit=4, processing_seconds=0.3 if holding else 8.0)
    hold = emu.hold() if holding else None
    gdf = fields(3)
    delivery = f"{root}/run-{with_client}"
    try:
        first = gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery=delivery,
            storage_options=emu.storage_options,
            client=client,
        )
        proc = _runner(emu, delivery, with_client=with_client)
        following = proc.stdout.readline()  # the other session follows the running rows
        assert following.startswith("FOLLOWING"), following + proc.stderr.read()[-2000:]
        states = json.loads(following.split(" ", 1)[1])
        if holding:  # nothing can have ended: the requests are held RUNNING
            assert states == ["running"] * 3, states
    finally:
        if hold is not None:
            hold.release()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.split("RESULT ", 1)[1])
    first.wait(timeout=120, progress=False)
    assert result["states"] == ["done"] * 3
    assert emu.stats["creates"] == 3  # the other session bought nothing
    assert result["means"] == [float(ds["ndvi"].mean().compute()) for ds in first]
    assert all(c > 0 for c in result["cost"])  # what the delivered requests were charged


def test_labels_keep_their_types_and_costs_are_reported(e2e):
    emu, client, root = e2e
    emu.configure(concurrency_limit=4, processing_seconds=0.2)
    cases = {
        "time": pd.DatetimeIndex(["2024-06-15", "2024-06-16"], name="day"),
        "multi": pd.MultiIndex.from_tuples([("x", 1), ("y", 2)], names=["farm", "plot"]),
    }
    for name, index in cases.items():
        gdf = fields(2, index=index)
        delivery = f"{root}/{name}"
        done = gdf.xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery=delivery,
            storage_options=emu.storage_options,
            client=client,
        ).wait(timeout=120, progress=False)
        attached = xasync.open_delivery(delivery, storage_options=emu.storage_options)
        attached.wait(timeout=60, progress=False)
        assert list(attached.datasets.index) == list(gdf.index), name
        assert type(attached.datasets.index[0]) is type(gdf.index[0])
        charged = done.status()["cost_pu"]
        assert (charged > 0).all()
        assert attached.status()["cost_pu"].tolist() == charged.tolist()
        assert np.isclose(attached.cost, done.cost)
