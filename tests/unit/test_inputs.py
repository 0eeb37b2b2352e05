"""Time values (#16 finding 3): every usual type, whole days/months, inclusive end dates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from xasync.errors import TimeRangeError, ValidationError
from xasync.inputs import parse_time_range

DAY = ("2024-06-15T00:00:00Z", "2024-06-15T23:59:59Z")
JUNE = ("2024-06-01T00:00:00Z", "2024-06-30T23:59:59Z")


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-15",
        dt.date(2024, 6, 15),
        dt.datetime(2024, 6, 15),
        pd.Timestamp("2024-06-15"),
        np.datetime64("2024-06-15"),
        np.datetime64("2024-06-15T00:00:00"),
        pd.Period("2024-06-15", freq="D"),
        ("2024-06-15", pd.Timestamp("2024-06-15")),
        (dt.date(2024, 6, 15), dt.date(2024, 6, 15)),
    ],
    ids=repr,
)
def test_a_date_without_time_of_day_is_the_whole_day(value):
    assert parse_time_range(value) == DAY


@pytest.mark.parametrize(
    "value",
    [
        "2024-06",
        np.datetime64("2024-06"),
        pd.Period("2024-06", freq="M"),
        pd.date_range("2024-06-01", "2024-06-30"),
        ("2024-06-01", pd.Timestamp("2024-06-30")),  # a midnight end keeps its last day
        (pd.Timestamp("2024-06-01"), dt.datetime(2024, 6, 30)),
        (np.datetime64("2024-06-01"), np.datetime64("2024-06-30")),
        ("2024-06", "2024-06"),
        [dt.date(2024, 6, 1), "2024-06-30"],
    ],
    ids=repr,
)
def test_months_periods_and_inclusive_end_dates(value):
    assert parse_time_range(value) == JUNE


def test_years_instants_and_time_zones():
    assert parse_time_range("2024") == ("2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z")
    assert parse_time_range(("2024-06-01T10:00:00Z", "2024-06-01T14:00:00+02:00")) == (
        "2024-06-01T10:00:00Z",
        "2024-06-01T12:00:00Z",
    )
    assert parse_time_range((np.datetime64("2024-06-01T10:00"), "2024-06-02")) == (
        "2024-06-01T10:00:00Z",
        "2024-06-02T23:59:59Z",
    )
    ljubljana = pd.Timestamp("2024-06-15", tz="Europe/Ljubljana")  # that local day, in UTC
    assert parse_time_range(ljubljana) == ("2024-06-14T22:00:00Z", "2024-06-15T21:59:59Z")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (pd.Timestamp("2024-06-15T10:00"), "zero length"),
        (("2024-06-01T10:00:00Z", "2024-06-01T12:00:00+02:00"), "zero length"),
        ("2024-06-15T10:00:00Z", "zero length"),
        (("2024-06-02", "2024-06-01"), "reversed"),
        ("lots", "cannot read"),
        (pd.NaT, "cannot read"),
        (np.datetime64("NaT"), "cannot read"),
        (5, "must be a string"),
        (("2024-06-01", None), "must be a string"),
        (("2024-06-01", "2024-06-02", "2024-06-03"), "start, end"),
        (pd.DatetimeIndex([]), "empty"),
    ],
    ids=repr,
)
def test_bad_or_zero_length_times_are_typed_errors(value, match):
    with pytest.raises(TimeRangeError, match=match) as info:
        parse_time_range(value)
    assert isinstance(info.value, ValidationError)


def test_the_rules_are_in_the_docstring():
    doc = parse_time_range.__doc__
    assert "whole day" in doc and "whole month" in doc and "zero-length" in doc
