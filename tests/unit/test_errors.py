"""Every exception lives in xasync.errors and pickles with its fields (dask ships them)."""

from __future__ import annotations

import inspect
import pickle

import pytest

import xasync
from xasync import errors

CLASSES = sorted(
    (
        c
        for c in vars(errors).values()
        if inspect.isclass(c)
        and issubclass(c, errors.XasyncError)
        and c.__module__ == errors.__name__
    ),
    key=lambda c: c.__name__,
)

EXAMPLES = {
    errors.TransportError: lambda: errors.TransportError("connection refused", maybe_sent=False),
    errors.ProcessingError: lambda: errors.ProcessingError("boom", request_id="r-1", row=("a", 2)),
    errors.RateLimited: lambda: errors.RateLimited(
        "slow down", retry_after=3.5, status_code=429, code="RATE", request_id="r-2"
    ),
    errors.OutputMismatchError: lambda: errors.OutputMismatchError(
        "ndvi", "bands", 3, 1, "s3://b/p/t/r/ndvi.tif"
    ),
}


def example(cls):
    if cls in EXAMPLES:
        return EXAMPLES[cls]()
    if issubclass(cls, errors.ApiError):
        return cls("bad payload", status_code=400, code="COMMON_BAD_PAYLOAD", errors=[{"x": 1}])
    return cls(f"a {cls.__name__} happened")


def test_the_family_is_complete():
    names = {c.__name__ for c in CLASSES}
    assert {
        "GeometryError", "CrsError", "TimeRangeError", "DeliveryUrlError", "CollectionError",
        "ResponseError", "OptionError", "GridError", "EvalscriptError", "DeliveryAccessError",
        "LabelError", "OutputMismatchError",
    } <= names  # fmt: skip
    for name in names:
        assert getattr(xasync, name) is getattr(errors, name)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_exception_pickles_with_its_fields(cls):
    exc = example(cls)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.args == exc.args
    assert vars(back) == vars(exc)
    assert isinstance(back, errors.XasyncError)
