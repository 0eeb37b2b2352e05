"""``estimate`` and what the delivery holds: states, ``pu_to_pay``, the options to look or not."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from xasync.errors import DeliveryAccessError
from xasync.estimate import estimate
from xasync.estimate_delivery import look_at_delivery, mark_existing, mark_unknown
from xasync.request import build_specs

from .test_estimate import NDVI_F32, TIME, _fields, no_network  # noqa: F401 (a fixture)


def _frame(n: int) -> pd.DataFrame:
    frame = pd.DataFrame({"estimated_pu": [5.0, 5.0, 10.0][:n]}, index=list("xyz")[:n])
    frame.attrs["total_pu"] = float(frame["estimated_pu"].sum())
    return frame


def test_pu_to_pay_counts_new_requests_once_shared_among_their_rows():
    urls = [("r/a",), ("r/a",), ("r/b", "r/c")]  # two rows share a; a row of two tiles
    costs = {"r/a": 10.0, "r/b": 4.0, "r/c": 6.0}
    states = {"r/a": "none", "r/b": "done", "r/c": "failed"}
    frame = mark_existing(_frame(3), urls, costs, states)
    assert frame["pu_to_pay"].tolist() == [5.0, 5.0, 0.0]
    assert frame["request_state"].tolist() == ["new", "new", "delivered failed"]
    assert frame.attrs["pu_to_pay"] == 10.0 and frame.attrs["delivery_checked"]
    rebuy = mark_existing(_frame(3), urls, costs, states, resubmit_failed=True)
    assert rebuy["pu_to_pay"].tolist() == [5.0, 5.0, 6.0] and rebuy.attrs["pu_to_pay"] == 16.0
    running = mark_existing(_frame(3), urls, costs, {**states, "r/a": "pending"})
    assert running["request_state"].tolist()[0] == "running" and running.attrs["pu_to_pay"] == 0


def test_without_a_look_everything_is_to_pay():
    frame = mark_unknown(_frame(2))
    assert frame["pu_to_pay"].tolist() == [5.0, 5.0] and frame.attrs["pu_to_pay"] == 10.0
    assert set(frame["request_state"]) == {"unknown"} and not frame.attrs["delivery_checked"]


def test_looking_is_optional_and_never_without_a_delivery(no_network):  # noqa: F811
    assert look_at_delivery(None, None, None) is None
    assert look_at_delivery("s3://bkt/run", None, False) is None
    with pytest.raises(DeliveryAccessError, match="needs delivery"):
        look_at_delivery(None, None, True)
    frame = estimate(_fields(64, 64), NDVI_F32, time=TIME, resolution=10)
    assert not frame.attrs["delivery_checked"] and set(frame["request_state"]) == {"unknown"}


def test_a_delivered_request_in_the_bucket_is_not_to_pay(s3_server, bucket, s3fs_fs):
    """Against moto: a request folder with its output is ``delivered``, the others ``new``."""
    root = f"s3://{bucket}/est-{uuid.uuid4().hex[:8]}"
    gdf = _fields(64, 128, 32)
    so = s3_server.storage_options
    fresh = estimate(gdf, NDVI_F32, time=TIME, resolution=10, delivery=root, storage_options=so)
    assert fresh.attrs["delivery_checked"] and set(fresh["request_state"]) == {"new"}
    assert fresh.attrs["pu_to_pay"] == pytest.approx(fresh.attrs["total_pu"])
    specs = build_specs(gdf, NDVI_F32, time=TIME, resolution=10, delivery=root)
    s3fs_fs.pipe(f"{specs[1].row_url}/REQ1/ndvi.tif", b"tif")
    s3fs_fs.pipe(f"{specs[1].row_url}/REQ1/request.json", b"{}")
    frame = estimate(gdf, NDVI_F32, time=TIME, resolution=10, delivery=root, storage_options=so)
    assert frame["request_state"].tolist() == ["new", "delivered", "new"]
    assert frame["pu_to_pay"].tolist() == [frame["estimated_pu"].iloc[0], 0.0, 10.0]
    assert frame.attrs["pu_to_pay"] == pytest.approx(fresh.attrs["total_pu"] - 10.0)
    assert frame["estimated_pu"].tolist() == fresh["estimated_pu"].tolist()  # full price kept
