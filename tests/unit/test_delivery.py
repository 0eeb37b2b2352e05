"""xasync.delivery against real objects on the moto S3 server."""

from __future__ import annotations

import collections
import datetime as _dt
import json

import numpy as np
import pandas as pd
import pytest

from xasync import delivery
from xasync._contract import ERROR_FILE, REQUEST_COPY_COST_FIELD, REQUEST_COPY_FILE
from xasync.delivery import RowDelivery, probe_row, probe_rows, read_manifests, write_manifest
from xasync.errors import ValidationError
from xasync.grid import PixelGrid
from xasync.plan import OutputPlan, ReadPlan


def count_calls(fs) -> collections.Counter:
    """Count S3 API calls made through ``fs`` (botocore ``before-call`` events)."""
    counts: collections.Counter = collections.Counter()

    def hook(event_name: str, **_kw) -> None:
        counts[event_name.rsplit(".", 1)[-1]] += 1

    fs.s3.meta.events.register("before-call.s3", hook)
    return counts


@pytest.fixture
def root(bucket):
    return f"s3://{bucket}/deliveries"


def put(fs, url: str, body: bytes = b"x") -> None:
    fs.pipe_file(url, body)


def test_states_error_and_cost_with_one_listing(s3fs_fs, root):
    fs = s3fs_fs
    put(fs, f"{root}/done/R1/default.tif")
    put(
        fs,
        f"{root}/done/R1/{REQUEST_COPY_FILE}",
        json.dumps({REQUEST_COPY_COST_FIELD: 12.5}).encode(),
    )
    put(fs, f"{root}/failed/R2/{ERROR_FILE}", json.dumps({"message": "no data in AOI"}).encode())
    put(fs, f"{root}/pending/R3/{REQUEST_COPY_FILE}", b"{}")
    rows = {f"{root}/{name}": ["default"] for name in ("done", "failed", "pending", "none")}

    calls = count_calls(fs)
    got = probe_rows(fs, rows)

    assert set(got) == set(rows)
    done = got[f"{root}/done"]
    assert done.state == "done"
    assert done.request_id == "R1"
    assert done.outputs == {"default": f"{root}/done/R1/default.tif"}
    assert done.cost == 12.5
    failed = got[f"{root}/failed"]
    assert (failed.state, failed.request_id, failed.error) == ("failed", "R2", "no data in AOI")
    assert failed.outputs == {}
    assert got[f"{root}/pending"].state == "pending"
    assert got[f"{root}/none"] == RowDelivery(state="none")
    # One listing for the four rows, then one GET for error.json and one for the request copy.
    assert calls["ListObjectsV2"] == 1
    assert calls["GetObject"] == 2


def test_completion_never_needs_the_request_copy(s3fs_fs, root):
    put(s3fs_fs, f"{root}/row/RID/default.tif")
    got = probe_row(s3fs_fs, f"{root}/row", ["default"])
    assert got.state == "done"
    assert got.cost is None
    assert got.is_final


def test_read_cost_false_reads_nothing_more(s3fs_fs, root):
    put(s3fs_fs, f"{root}/row/RID/default.tif")
    put(s3fs_fs, f"{root}/row/RID/{REQUEST_COPY_FILE}", b'{"processingUnits": 3}')
    calls = count_calls(s3fs_fs)
    got = probe_row(s3fs_fs, f"{root}/row", ["default"], read_cost=False)
    assert got.state == "done"
    assert got.cost is None
    assert dict(calls) == {"ListObjectsV2": 1}


def test_all_outputs_needed_and_complete_folder_wins(s3fs_fs, root):
    fs = s3fs_fs
    # Attempt A failed, attempt B delivered both outputs, attempt C has only one so far.
    put(fs, f"{root}/row/A/{ERROR_FILE}", b'{"message": "transient"}')
    put(fs, f"{root}/row/B/rgb.tif")
    put(fs, f"{root}/row/B/ndvi.tif")
    put(fs, f"{root}/row/C/rgb.tif")
    got = probe_row(fs, f"{root}/row", ["rgb", "ndvi"])
    assert got.state == "done"
    assert got.request_id == "B"
    assert got.request_ids == ("A", "B", "C")
    assert got.outputs == {"rgb": f"{root}/row/B/rgb.tif", "ndvi": f"{root}/row/B/ndvi.tif"}

    only_partial = probe_row(fs, f"{root}/row", ["rgb", "ndvi", "mask"])
    assert only_partial.state in ("pending", "failed")
    assert only_partial.outputs == {}


def test_failed_then_resubmitted_is_pending(s3fs_fs, root):
    fs = s3fs_fs
    put(fs, f"{root}/row/A/{ERROR_FILE}", b'{"message": "first try"}')
    assert probe_row(fs, f"{root}/row", ["default"]).state == "failed"
    # A new attempt's folder appears later: the newest folder decides.
    put(fs, f"{root}/row/B/{REQUEST_COPY_FILE}", b"{}")
    got = probe_row(fs, f"{root}/row", ["default"])
    assert got.state == "pending"
    assert got.request_id == "B"


def test_stale_listing_cache_does_not_hide_a_delivery(s3fs_fs, root):
    fs = s3fs_fs
    put(fs, f"{root}/row/RID/{REQUEST_COPY_FILE}", b"{}")
    fs.ls(f"{root}/row/RID")  # fills s3fs's listing cache
    assert probe_row(fs, f"{root}/row", ["default"]).state == "pending"
    # Written by another client (the service): fs's own cache does not know it.
    other = type(fs)(
        key=fs.key,
        secret=fs.secret,
        client_kwargs=fs.client_kwargs,
        skip_instance_cache=True,
    )
    other.pipe_file(f"{root}/row/RID/default.tif", b"tif")
    assert probe_row(fs, f"{root}/row", ["default"]).state == "done"


def test_sibling_prefixes_and_foreign_files_are_not_mixed(s3fs_fs, root):
    fs = s3fs_fs
    put(fs, f"{root}/ab/R/default.tif")  # sibling whose name starts like "a"
    put(fs, f"{root}/a/stray.txt")  # not in a request folder
    put(fs, f"{root}/a/R/deep/default.tif")  # too deep
    got = probe_rows(fs, [(f"{root}/a/", ["default"]), (f"{root}/ab", ["default"])])
    assert got[f"{root}/a/"].state == "pending"  # folder R exists, without default.tif at its top
    assert got[f"{root}/ab"].state == "done"


def test_error_json_without_message_and_bad_cost(s3fs_fs, root):
    put(s3fs_fs, f"{root}/e1/R/{ERROR_FILE}", b"plain text failure")
    put(s3fs_fs, f"{root}/e2/R/{ERROR_FILE}", b'{"error": {"message": "nested"}}')
    put(s3fs_fs, f"{root}/ok/R/default.tif")
    put(s3fs_fs, f"{root}/ok/R/{REQUEST_COPY_FILE}", b"not json")
    got = probe_rows(s3fs_fs, {f"{root}/{n}": ["default"] for n in ("e1", "e2", "ok")})
    assert got[f"{root}/e1"].error == "plain text failure"
    assert got[f"{root}/e2"].error == "nested"
    assert got[f"{root}/ok"].state == "done"
    assert got[f"{root}/ok"].cost is None


def test_rows_in_two_buckets(s3fs_fs, root, s3_server):
    import uuid

    import boto3

    other = f"test-{uuid.uuid4().hex[:12]}"
    opts = s3_server.storage_options
    boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=opts["key"],
        aws_secret_access_key=opts["secret"],
        region_name="us-east-1",
    ).create_bucket(Bucket=other)
    put(s3fs_fs, f"{root}/r/R/default.tif")
    put(s3fs_fs, f"s3://{other}/p/r/S/default.tif")
    calls = count_calls(s3fs_fs)
    got = probe_rows(s3fs_fs, {f"{root}/r": ["default"], f"s3://{other}/p/r": ["default"]})
    assert {v.state for v in got.values()} == {"done"}
    assert calls["ListObjectsV2"] == 2


@pytest.mark.parametrize("rows", [{"s3://b/r": []}, {"": ["default"]}])
def test_bad_input_is_a_validation_error(s3fs_fs, rows):
    with pytest.raises(ValidationError):
        probe_rows(s3fs_fs, rows)


def test_manifests_round_trip(s3fs_fs, root):
    assert read_manifests(s3fs_fs, root) == []
    grid = PixelGrid(32633, (500_000.0, 4_990_000.0, 500_100.0, 4_990_050.0), 10, 5)
    plan = ReadPlan(
        token="t0",
        row_url=f"{root}/t0",
        grid=grid,
        outputs=(OutputPlan("default", 3, "uint8"),),
        label=7,
        time_range=("2024-06-01T00:00:00Z", "2024-06-30T23:59:59Z"),
        mask_wkb=bytes.fromhex("0101000000000000000000f03f0000000000000040"),
    )
    rows = [
        {
            "position": 0,
            "plan": plan.to_dict(),
            "body": {"input": {"data": [{"type": "sentinel-2-l2a"}]}},
        }
    ]
    url = write_manifest(s3fs_fs, root, "call-1", rows)
    assert url == f"{root}/_xasync/call-1.json"
    write_manifest(s3fs_fs, root, "call-2", [{"token": "t1", "row_url": f"{root}/t1"}])
    s3fs_fs.pipe_file(f"{root}/_xasync/junk.json", b"{not json")
    s3fs_fs.pipe_file(f"{root}/_xasync/future.json", b'{"version": 99, "rows": []}')

    got = read_manifests(s3fs_fs, root)
    assert [m["call_token"] for m in got] == ["call-1", "call-2"]
    assert all(m["version"] == 1 for m in got)
    assert got[0]["rows"] == rows
    assert ReadPlan.from_dict(got[0]["rows"][0]["plan"]) == plan
    # the manifest folder never looks like a delivered row
    assert probe_row(s3fs_fs, f"{root}/t0", ["default"]).state == "none"


def test_manifest_rejects_bad_rows(s3fs_fs, root):
    with pytest.raises(ValidationError):
        write_manifest(s3fs_fs, root, "c", [{"row_url": "s3://x/y"}])
    with pytest.raises(ValidationError):
        write_manifest(s3fs_fs, root, "c", [{"token": "t", "row_url": "u", "x": object()}])
    with pytest.raises(ValidationError):
        write_manifest(s3fs_fs, root, "a/b", [])
    assert not s3fs_fs.exists(f"{root}/_xasync")


@pytest.mark.parametrize(
    "label",
    [
        "a",
        7,
        2.5,
        True,
        None,
        pd.Timestamp("2024-06-15"),
        pd.Timestamp("2024-06-15 10:30", tz="Europe/Ljubljana"),
        _dt.datetime(2024, 6, 15, 10, 30),
        _dt.date(2024, 6, 15),
        ("x", 1),
        ("x", pd.Timestamp("2024-01-01"), (2, "y")),
        {"$xasync_label": "not mine"},
    ],
)
def test_labels_round_trip_through_json_with_their_types(label):
    encoded = json.loads(json.dumps(delivery.encode_label(label)))
    back = delivery.decode_label(encoded)
    if isinstance(label, dict):  # a foreign object that looks like ours: kept as a string
        assert isinstance(back, str)
        return
    assert back == label and type(back) is type(label)


def test_numpy_labels_become_python_scalars():
    assert delivery.decode_label(delivery.encode_label(np.int64(3))) == 3
    assert type(delivery.decode_label(delivery.encode_label(np.int64(3)))) is int


def test_common_root_is_posix_commonpath():
    """The listing root from the lowest and highest path equals posixpath.commonpath."""
    import posixpath
    import random

    rng = random.Random(7)
    names = ["a", "ab", "b", "a1", "a-b"]
    cases = [["a/b", "a/bc"], ["a/b", "a/b/c"], ["a/b", "a/b"], ["x", "y"], ["r/aa", "r/ab"]]
    for _ in range(3000):
        cases.append(
            ["/".join(rng.choice(names) for _ in range(rng.randint(1, 4))) for _ in range(4)]
        )
    for paths in cases:
        assert delivery._common_root(paths) == posixpath.commonpath(paths), paths


def test_nested_row_prefixes_each_see_their_own_folders(s3fs_fs, root):
    """A row whose prefix lies under another row's prefix (tiles under a row) is classified
    from the same single listing as when probed alone."""
    outer, inner = f"{root}/row", f"{root}/row/tile-0"
    s3fs_fs.pipe(
        {
            f"{inner.removeprefix('s3://')}/r1/ndvi.tif": b"x",
            f"{outer.removeprefix('s3://')}/r2/ndvi.tif": b"x",
        }
    )
    both = probe_rows(s3fs_fs, {outer: ["ndvi"], inner: ["ndvi"]}, read_cost=False)
    for url in (outer, inner):
        alone = probe_row(s3fs_fs, url, ["ndvi"], read_cost=False)
        assert both[url] == alone
    assert both[inner].request_id == "r1" and both[inner].state == "done"
    assert set(both[outer].request_ids) == {"r2", "tile-0"}
