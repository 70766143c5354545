"""Timestamps of any common spelling as seconds since the Unix epoch: seconds, milliseconds
(told apart by size under 'auto'), ISO-8601 text, or a datetime/date. One definition shared
by every loader that accepts free-form times, so they order events the same way."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from llmrank.errors import MalformedLineError

MS_THRESHOLD = 1e11  # a Unix time in seconds this large is in the year 5138: it is milliseconds
MAX_SECONDS = 253402300800.0  # 9999-12-31 (datetime's limit); beyond it a value is corrupt


def in_range(seconds: Any) -> bool:
    """Every value (a number or an array of seconds) finite and within year 9999 (NaN fails):
    the check the vectorised fast readers make before casting a column to int64, so a corrupt
    value sends them to the row-by-row reader, which reports its line."""
    return bool(np.all(np.abs(np.asarray(seconds, np.float64)) <= MAX_SECONDS))


def to_seconds(value: Any, unit: str, path: str, line_no: int) -> int:
    """A timestamp in whole seconds (see ``exact_time``)."""
    return math.floor(exact_time(value, unit, path, line_no))


def exact_time(value: Any, unit: str, path: str, line_no: int) -> float:
    """Seconds, with any fraction, from seconds, milliseconds ('auto': values above 1e11),
    an ISO-8601 string or a datetime; naive datetimes are taken as UTC. The fraction orders
    events within one second."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    try:
        number = _number(value, unit)
    except OverflowError:  # an integer beyond float range
        raise MalformedLineError(path, line_no, f"timestamp out of range: {value!r}") from None
    if number is not None and math.isfinite(number):
        seconds = number / 1000 if unit == "ms" or (unit == "auto" and abs(number) > MS_THRESHOLD) else number
        if not in_range(seconds):  # past year 9999: a corrupt value, not a time
            raise MalformedLineError(path, line_no, f"timestamp out of range: {value!r}")
        return seconds
    parsed = _iso_datetime(value) if unit in ("auto", "iso") else None
    if parsed is not None:
        return exact_time(parsed, unit, path, line_no)
    raise MalformedLineError(path, line_no, f"timestamp is not a {'date' if unit == 'iso' else 'time'}: {value!r}")


def _number(value: Any, unit: str) -> float | None:
    """A number, or text that parses as one (except under 'iso', where all text is a date);
    None otherwise. A bool is not a time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and unit != "iso":
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _iso_datetime(value: Any) -> dt.datetime | None:
    """An ISO-8601 string ('Z' accepted for UTC) as a datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
