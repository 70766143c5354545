"""Timestamps in any common spelling as seconds (shared by the loaders)."""

from __future__ import annotations

import datetime as dt

import pytest

from llmrank.data.timestamps import exact_time, to_seconds
from llmrank.errors import MalformedLineError


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1_600_000_000, "auto", 1_600_000_000), (1_600_000_000_123, "auto", 1_600_000_000),
    ("1600000000.9", "s", 1_600_000_000), (1_600_000_000_000, "ms", 1_600_000_000),
    ("2020-09-13T12:26:40+00:00", "iso", 1_600_000_000), ("2020-09-13", "auto", 1_599_955_200),
])
def test_to_seconds(value, unit, expected):
    assert to_seconds(value, unit, "p", 1) == expected


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (dt.datetime(2020, 9, 13, 12, 26, 40, 500_000), "auto", 1_600_000_000.5),  # naive = UTC
    (dt.datetime(2020, 9, 13, 14, 26, 40, tzinfo=dt.timezone(dt.timedelta(hours=2))), "s", 1_600_000_000.0),
    (dt.date(2020, 9, 13), "iso", 1_599_955_200.0),
    (1_600_000_000_500, "auto", 1_600_000_000.5), (1e11, "auto", 1e11), (-2e11, "auto", -2e8),
    ("1600000000500", "ms", 1_600_000_000.5), (" 12.5 ", "s", 12.5),
    ("2020-09-13T12:26:40.25Z", "auto", 1_600_000_000.25), ("2020-09-13 12:26:40", "iso", 1_600_000_000.0),
])
def test_exact_time(value, unit, expected):
    assert exact_time(value, unit, "p", 1) == expected


@pytest.mark.parametrize(("value", "unit", "word"), [
    (True, "auto", "time"), (float("nan"), "auto", "time"), ("inf", "s", "time"), (None, "auto", "time"),
    ("1600000000", "iso", "date"), ("2020-13-01", "iso", "date"), ("2020-09-13", "s", "time"),
])
def test_exact_time_rejects(value, unit, word):
    with pytest.raises(MalformedLineError, match=f"timestamp is not a {word}: ") as exc:
        exact_time(value, unit, "p", 7)
    assert (exc.value.path, exc.value.line_no) == ("p", 7)


@pytest.mark.parametrize(("value", "unit"), [(10**400, "auto"), (1e25, "auto"), ("1e25", "s"),
                                            (-(10**20), "s"), (10**19, "ms")])
def test_exact_time_rejects_values_past_year_9999(value, unit):
    with pytest.raises(MalformedLineError, match="timestamp out of range: "):
        exact_time(value, unit, "p", 7)


def test_in_range_for_numbers_and_arrays():
    import numpy as np

    from llmrank.data.timestamps import MAX_SECONDS, in_range

    assert in_range(1_600_000_000) and in_range(-1e9) and in_range(MAX_SECONDS)
    assert not in_range(MAX_SECONDS * 1.01) and not in_range(float("nan")) and not in_range(float("inf"))
    assert in_range(np.array([0.0, 1.6e9])) and not in_range(np.array([1.6e9, 1e22]))
