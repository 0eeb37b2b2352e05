"""The budget helpers of :mod:`xasync.budget` and the text of :class:`BudgetExceeded`.

The end-to-end checks (what exists under a real delivery is not counted) are in
``tests/integration/test_budget_to_pay.py``; here, what needs no delivery.
"""

from __future__ import annotations

import math
import pickle
import socket

import geopandas as gpd
import pytest
from shapely.geometry import box

import xasync
from xasync.budget import check_to_pay, paid_states, validate_max_pu
from xasync.errors import BudgetExceeded, EvalscriptError, ValidationError
from xasync.estimate_delivery import mark_existing
from xasync.request import build_specs

NDVI = """//VERSION=3
function setup() {
  return {input: ["B04", "B08", "dataMask"], output: {id: "ndvi", bands: 1, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) { return [(s.B08 - s.B04) / (s.B08 + s.B04 + 1e-6)]; }
"""


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the check needs no delivery)."""

    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f"network access to {address!r} during a budget check")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _specs(n: int = 3, script: str = NDVI):
    geoms = [box(14.0 + 0.01 * i, 46.0, 14.002 + 0.01 * i, 46.001) for i in range(n)]
    gdf = gpd.GeoDataFrame(geometry=geoms, crs=4326)
    return build_specs(
        gdf,
        script,
        time=("2024-06-01", "2024-06-30"),
        resolution=10,
        crs="utm",
        delivery="s3://bucket/budget",
        tiled=True,
        outputs={"ndvi": {"bands": 1, "sampleType": "FLOAT32"}},
    )


@pytest.mark.parametrize("bad", ["10", -1, 0, math.nan, math.inf, True, [5]])
def test_validate_max_pu_refuses_what_is_not_a_positive_number(bad):
    with pytest.raises(ValidationError, match="max_pu must be"):
        validate_max_pu(bad)


@pytest.mark.parametrize("good", [None, 0.5, 10, 1e9])
def test_validate_max_pu_takes_none_and_positive_numbers(good):
    assert validate_max_pu(good) is None


def test_failed_requests_are_paid_only_when_bought_again():
    assert paid_states(False) == {"none"}
    assert paid_states(True) == {"none", "failed"}


def test_without_a_look_every_request_counts(no_network):
    specs = _specs(3)  # three small requests, 10 PU each
    assert check_to_pay(specs, None, None) is None
    assert check_to_pay(specs, 30, None) == pytest.approx(30.0)
    with pytest.raises(BudgetExceeded) as info:
        check_to_pay(specs, 29.5, None)
    assert info.value.estimate_pu == pytest.approx(30.0) and info.value.requests == 3
    assert info.value.existing_pu is None
    assert "the 3 requests of this call are estimated at 30.00 PU" in str(info.value)
    assert "delivery" not in str(info.value).split("nothing was submitted.")[1].split("See")[0]


def test_a_known_total_within_the_budget_prices_nothing(no_network):
    specs = _specs(3)
    assert check_to_pay(specs, 40, None, total=12.5) == 12.5  # taken as given: it fits
    with pytest.raises(BudgetExceeded):  # above: priced request by request
        check_to_pay(specs, 25, None, total=30.0)


def test_a_script_without_a_local_setup_cannot_be_checked(no_network):
    script = "//VERSION=3\nfunction setup() { throw new Error('needs the service'); }\n"
    specs = _specs(2, script)
    with pytest.raises(EvalscriptError, match="cannot check max_pu"):
        check_to_pay(specs, 100, None, total=math.nan)
    assert check_to_pay(specs, None, None, total=math.nan) is None  # no budget: no check


def test_the_message_says_what_is_already_delivered_and_running():
    err = BudgetExceeded(
        20.0, 15.0, 2, existing={"delivered": 30.0, "running": 10.0, "failed": 0.0}
    )
    text = str(err)
    assert "the 2 requests this call would buy are estimated at 20.00 PU" in text
    assert "max_pu=15" in text and "nothing was submitted" in text
    assert "30.00 PU delivered, 10.00 PU running" in text and "failed" not in text
    assert err.existing_pu == {"delivered": 30.0, "running": 10.0, "failed": 0.0}
    failed = BudgetExceeded(20.0, 15.0, 2, existing={"delivered": 0.0, "failed": 7.5})
    assert "7.50 PU failed (resubmit_failed=False)" in str(failed)
    assert "delivered" not in str(failed)
    fresh = BudgetExceeded(20.0, 15.0, 2, exact=False, existing={"delivered": 0.0})
    assert "at least 20.00 PU" in str(fresh) and "Nothing of this call" in str(fresh)


def test_the_error_pickles_with_what_exists():
    err = BudgetExceeded(20.0, 15.0, 2, existing={"delivered": 30.0})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is BudgetExceeded and str(back) == str(err)
    assert vars(back) == vars(err) and back.existing_pu == {"delivered": 30.0}
    assert isinstance(back, xasync.ValidationError)


def test_pu_to_pay_does_not_depend_on_the_order_of_the_requests():
    """``attrs["pu_to_pay"]`` is an exact sum (fsum), as the budget check's: no order noise."""
    import pandas as pd

    costs = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 1e16, "e": -1e16}
    states = dict.fromkeys(costs, "none")
    frames = []
    for order in (list(costs), list(reversed(costs))):
        frame = pd.DataFrame({"estimated_pu": [costs[u] for u in order]}, index=order)
        frames.append(mark_existing(frame, [(u,) for u in order], costs, states))
    assert frames[0].attrs["pu_to_pay"] == frames[1].attrs["pu_to_pay"] == math.fsum(costs.values())
