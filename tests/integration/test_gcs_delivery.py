"""Delivery to Google Cloud Storage end to end (issue 15, item 1), on the emulator's GCS server.

The same rows delivered to GCS and to S3 give identical values; a second call buys nothing;
``open_delivery("gs://...")`` re-attaches; ``status`` and ``xasync status gs://`` work;
a LocalCluster with worker processes reads from GCS; the service account's private key is in
no repr, log line, Dataset attrs or pickled graph.
"""

from __future__ import annotations

import json
import logging
import os
import pickle

import geopandas as gpd
import numpy as np
import pytest

import xasync
from xasync.errors import OptionError, ValidationError
from xasync.submitter import claim

from ._shared import NDVI_NO_MASK, TIME
from ._shared import fields as shared_fields

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
gcsfs = pytest.importorskip("gcsfs", reason="gcsfs (xasync[gcs]) reads gs:// deliveries")

NDVI = NDVI_NO_MASK


def fields(n: int = 3) -> gpd.GeoDataFrame:
    return shared_fields(n, index=[10, 11, 12][:n])  # integer labels


@pytest.fixture
def setup(emu):
    emu.configure(concurrency_limit=4, processing_seconds=0.2)
    client = xasync.Client.from_emulator(emu)
    tag = os.urandom(5).hex()
    gs = emu.create_gcs_bucket(f"gcs-{tag}")
    s3 = emu.create_bucket(f"s3-{tag}")
    yield emu, client, gs, s3
    client.close()


def gcs_call(gdf, emu, client, delivery, **kw):
    kw.setdefault("gcs_credentials", emu.gcs_credentials)
    return gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=delivery,
        storage_options=emu.gcs_storage_options,
        client=client,
        **kw,
    )


def values(results) -> list[np.ndarray]:
    return [results[i]["ndvi"].values for i in range(len(results))]


def test_gcs_and_s3_deliveries_give_identical_values_and_rerun_buys_nothing(setup):
    emu, client, gs, s3 = setup
    gdf = fields()
    on_gcs = gcs_call(gdf, emu, client, f"{gs}/run")
    on_s3 = gdf.xasync.process(
        NDVI,
        time=TIME,
        resolution=0.0002,
        delivery=f"{s3}/run",
        storage_options=emu.storage_options,
        client=client,
    )
    gcs_vals, s3_vals = values(on_gcs), values(on_s3)
    for a, b in zip(gcs_vals, s3_vals):
        assert np.isfinite(a).any()
        np.testing.assert_array_equal(a, b)
    on_gcs.wait(timeout=120, progress=False)
    status = on_gcs.status()
    assert (status["state"] == "done").all()
    assert status["cost_pu"].sum() > 0
    creates = emu.stats["creates"]
    assert creates == 6  # 3 on each store
    gfs = gcsfs.core.GCSFileSystem(**emu.gcs_storage_options, skip_instance_cache=True)
    assert any(p.endswith("/ndvi.tif") for p in gfs.find(gs[5:]))

    again = gcs_call(gdf, emu, client, f"{gs}/run")
    again.wait(timeout=120, progress=False)
    assert emu.stats["creates"] == creates  # nothing bought again
    assert (again.status()["state"] == "done").all()
    for a, b in zip(values(again), gcs_vals):
        np.testing.assert_array_equal(a, b)


def test_open_delivery_and_status_cli_on_gcs(setup, capsys):
    emu, client, gs, _ = setup
    gdf = fields(2)
    first = gcs_call(gdf, emu, client, f"{gs}/re")
    first.wait(timeout=120, progress=False)
    creates = emu.stats["creates"]
    back = xasync.open_delivery(f"{gs}/re", storage_options=emu.gcs_storage_options)
    back.wait(timeout=120, progress=False)
    assert len(back) == 2 and emu.stats["creates"] == creates
    for i in range(2):
        label = back.status().index[i]
        np.testing.assert_array_equal(
            back[i]["ndvi"].values, first[list(gdf.index).index(label)]["ndvi"].values
        )

    from xasync.cli import delivery_status, main

    table = delivery_status(f"{gs}/re", emu.gcs_storage_options)
    assert len(table) == 2 and set(table["state"]) == {"done"}
    port = emu.gcs_storage_options["endpoint_url"]
    assert main(["status", f"{gs}/re", "--endpoint-url", port, "--anon"]) == 0
    out = capsys.readouterr().out
    assert "done" in out


def test_gcs_claims_use_the_generation_precondition(setup):
    emu, _, gs, _ = setup
    fs = gcsfs.core.GCSFileSystem(**emu.gcs_storage_options, skip_instance_cache=True)
    url = f"{gs}/claims/abc"
    assert claim.take(fs, url, 0, "me")[0] == claim.WON
    state, age = claim.take(fs, url, 0, "someone-else")
    assert state == claim.HELD and age is not None and age >= 0
    assert claim.take(fs, url, 0, "me")[0] == claim.WON  # its own claim
    claim.release(fs, url, 0)
    assert not claim.exists(fs, url, 0)


def test_local_cluster_reads_from_gcs(setup, dask_client):
    emu, client, gs, _ = setup
    results = gcs_call(fields(2), emu, client, f"{gs}/dist")
    local = values(results)
    remote = dask_client.compute([results[i]["ndvi"].data for i in range(2)], sync=True)
    for a, b in zip(remote, local):
        np.testing.assert_array_equal(a, b)


def test_gcs_private_key_is_nowhere(setup, caplog):
    emu, client, gs, _ = setup
    secret_key = emu.gcs_credentials["private_key"]
    secret_line = secret_key.splitlines()[1]  # the key material itself
    caplog.set_level(logging.DEBUG)
    results = gcs_call(fields(2), emu, client, f"{gs}/secret")
    results.wait(timeout=120, progress=False)
    ds = results[0]
    ds.load()
    places = {
        "repr(results)": repr(results),
        "repr(ds)": repr(ds),
        "attrs": json.dumps(ds.attrs, default=str)
        + json.dumps({k: v.attrs for k, v in ds.variables.items()}, default=str),
        "status": results.status().to_string(),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
    }
    for where, text in places.items():
        assert secret_line not in text, where
    graph = pickle.dumps(results[1].__dask_graph__())
    assert secret_line.encode() not in graph
    import base64

    b64 = base64.b64encode(json.dumps(emu.gcs_credentials).encode())
    assert b64 not in graph and b64[:40] not in graph


def test_bad_gcs_credentials_fail_before_paying(setup, tmp_path):
    emu, client, gs, _ = setup
    creates = emu.stats["create_calls"]
    with pytest.raises(ValidationError, match="gcs_credentials"):
        gcs_call(fields(1), emu, client, f"{gs}/bad", gcs_credentials=None)
    bad = {k: v for k, v in emu.gcs_credentials.items() if k != "private_key"}
    with pytest.raises(ValidationError, match="private_key") as err:
        gcs_call(fields(1), emu, client, f"{gs}/bad", gcs_credentials=bad)
    assert emu.gcs_credentials["client_email"] not in str(err.value)
    missing = tmp_path / "nope.json"
    with pytest.raises(ValidationError, match="cannot read"):
        gcs_call(fields(1), emu, client, f"{gs}/bad", gcs_credentials=str(missing))
    with pytest.raises(ValidationError, match="iam_role_arn"):
        gcs_call(fields(1), emu, client, f"{gs}/bad", iam_role_arn="arn:aws:iam::1:role/x")
    with pytest.raises(OptionError, match="gs:// deliveries only"):
        fields(1).xasync.process(
            NDVI,
            time=TIME,
            resolution=0.0002,
            delivery=emu.create_bucket(f"s3-{os.urandom(4).hex()}"),
            storage_options=emu.storage_options,
            gcs_credentials=emu.gcs_credentials,
            client=client,
        )
    assert emu.stats["create_calls"] == creates


def test_credentials_from_a_file(setup, tmp_path):
    emu, client, gs, _ = setup
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(emu.gcs_credentials))
    results = gcs_call(fields(1), emu, client, f"{gs}/file", gcs_credentials=path)
    results.wait(timeout=120, progress=False)
    assert (results.status()["state"] == "done").all()
