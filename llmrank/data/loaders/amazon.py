"""Amazon reviews as JSON lines with item metadata, in both public layouts.

- 2018 (Ni et al.; also the 2014 McAuley files): reviews with ``reviewerID``, ``asin``,
  ``overall``, ``unixReviewTime``; ``meta_*.json(.gz)`` with ``asin``, ``title``,
  ``description`` (a list), ``category``, ``brand``, ``feature``, ... Some of those metadata
  files are Python dict literals rather than JSON; both are read.
- 2023 (Hou et al.): reviews with ``user_id``, ``parent_asin``, ``rating``, ``timestamp`` in
  milliseconds; ``meta_*.jsonl(.gz)`` with ``parent_asin``, ``title``, ``features``,
  ``description``, ``categories``, ``details``, ``main_category``, ``store``.

Only metadata of reviewed items is kept by default: the metadata files are far larger than
the reviews for the items anyone bought."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import (
    ErrorPolicy,
    LoadReport,
    finite_rating,
    iter_records,
    peek_objects,
    require_events,
)
from llmrank.data.loaders import copy_signature
from llmrank.data.loaders.amazon_meta import Version, read_meta
from llmrank.data.timestamps import in_range
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item

log = logging.getLogger(__name__)

_JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


@dataclass(frozen=True)
class _Layout:
    user: str
    item: str
    rating: str
    timestamp: str
    ms: bool  # timestamps in milliseconds
    meta_item: str


_LAYOUTS: dict[str, _Layout] = {
    "2018": _Layout("reviewerID", "asin", "overall", "unixReviewTime", False, "asin"),
    "2023": _Layout("user_id", "parent_asin", "rating", "timestamp", True, "parent_asin"),
}


def load_amazon(
    path: str | Path, *, meta_path: str | Path | None = None, version: Version | None = None,
    name: str | None = None, on_error: ErrorPolicy = "skip", report: LoadReport | None = None,
    all_meta_items: bool = False,
) -> Dataset:
    """Load Amazon reviews (a reviews file, or a folder with one reviews file and its
    ``meta_`` file). The release is detected from the first review unless ``version`` is
    given; ``all_meta_items`` keeps catalog items nobody reviewed."""
    report = report if report is not None else LoadReport()
    reviews, meta = find_files(Path(path), Path(meta_path) if meta_path else None)
    version = version or detect_version(reviews)
    layout = _LAYOUTS[version]
    name = name or _base_name(reviews)
    events, order = _read_reviews(reviews, layout, on_error, report)
    items: list[Item] = []
    if meta is not None:
        wanted = None if all_meta_items else set(events.items)
        items = read_meta(meta, version, layout.meta_item, wanted, on_error, report)
    else:
        log.warning("no metadata file next to %s: items will have ids only", reviews)
    ds = Dataset.from_arrays(name, items, [], events.users, events.items,
                             np.asarray(events.timestamps, np.int64),
                             np.asarray(events.ratings, np.float32), order)
    log.info("amazon %s: %d users, %d items, %d reviews", version, ds.n_users, ds.n_items, len(ds.interactions))
    return ds


def load_amazon_2018(path: str | Path, **kwargs: Any) -> Dataset:
    return load_amazon(path, version="2018", **kwargs)


def load_amazon_2023(path: str | Path, **kwargs: Any) -> Dataset:
    return load_amazon(path, version="2023", **kwargs)


for _wrapper in (load_amazon_2018, load_amazon_2023):
    copy_signature(_wrapper, load_amazon, "version")


# ---- files -----------------------------------------------------------------------------------

def is_json_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_JSON_SUFFIXES)


def _base_name(path: Path) -> str:
    """'reviews_Books_5.json.gz' -> 'Books'; 'meta_All_Beauty.jsonl' -> 'All_Beauty'."""
    base = path.name
    for suffix in (".gz", ".jsonl", ".json"):
        base = base.removesuffix(suffix)
    for prefix in ("meta_", "reviews_"):
        base = base.removeprefix(prefix)
    return base.removesuffix("_5")


def find_files(path: Path, meta: Path | None = None) -> tuple[Path, Path | None]:
    """(reviews file, metadata file or None) for a file or a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if is_json_file(p))
        reviews = [p for p in files if not p.name.startswith("meta_")]
        if len(reviews) != 1:
            found = ", ".join(p.name for p in reviews) or "none"
            raise DataError(f"{path}: expected one Amazon reviews file (JSON lines), found {found}; "
                            "pass the reviews file itself")
        metas = [p for p in files if p.name.startswith("meta_")]
        review_file = reviews[0]
    elif path.is_file():
        review_file = path
        metas = sorted(p for p in path.parent.iterdir() if is_json_file(p) and p.name.startswith("meta_"))
    else:
        raise DataError(f"Amazon reviews not found: {path}")
    if meta is not None:
        if not meta.is_file():
            raise DataError(f"Amazon metadata file not found: {meta}")
        return review_file, meta
    matching = [p for p in metas if _base_name(p) == _base_name(review_file)]
    if matching:
        return review_file, matching[0]
    return review_file, metas[0] if len(metas) == 1 else None


def first_record(path: Path) -> dict[str, Any] | None:
    """The first parseable JSON object of a JSON-lines file, for format detection."""
    try:
        return next(peek_objects(path, 50), None)
    except (OSError, EOFError):
        return None


def detect_version(path: Path) -> Version:
    rec = first_record(path) or {}
    if "reviewerID" in rec or "overall" in rec:
        return "2018"
    if "user_id" in rec and ("parent_asin" in rec or "asin" in rec):
        return "2023"
    raise DataError(f"{path}: not an Amazon reviews file (no reviewerID/asin or user_id/parent_asin "
                    "fields in its first records); pass --format jsonl with a column mapping instead")


# ---- reviews ---------------------------------------------------------------------------------

def _read_reviews(path: Path, layout: _Layout, on_error: ErrorPolicy,
                  report: LoadReport) -> tuple[EventColumns, np.ndarray]:
    """Review events and their within-second order; none at all is an error."""
    skipped_before = report.skipped
    events = EventColumns()
    exact: list[int] = []  # timestamps at full precision, for the within-second order
    where = str(path)
    for line_no, rec in iter_records(path, report=report, on_error=on_error):
        try:
            uid = _id(rec, layout.user, where, line_no)
            iid = _id(rec, layout.item if layout.item in rec else "asin", where, line_no)
            ts = _timestamp(rec, layout, where, line_no)
            rating = _rating(rec.get(layout.rating), where, line_no)
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        events.append(uid, iid, ts // 1000 if layout.ms else ts, rating)
        exact.append(ts)
    require_events(len(events), path, report, skipped_before=skipped_before)
    n = len(exact)
    rank = np.lexsort((np.arange(n), np.asarray(exact, np.int64)))
    order = np.empty(n, np.int64)
    order[rank] = np.arange(n)
    return events, order


def _id(rec: dict[str, Any], key: str, path: str, line_no: int) -> str:
    value = rec.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise MalformedLineError(path, line_no, f"missing or empty {key!r}")
    return value.strip()


def _timestamp(rec: dict[str, Any], layout: _Layout, path: str, line_no: int) -> int:
    value = rec.get(layout.timestamp)
    if value is None and "reviewTime" in rec:  # 2014 files: '09 13, 2009'
        try:
            day = dt.datetime.strptime(str(rec["reviewTime"]).strip(), "%m %d, %Y")
            return int(day.replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            pass
    try:
        if isinstance(value, bool):
            raise TypeError
        raw = int(float(value)) if isinstance(value, str) else int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise MalformedLineError(path, line_no, f"{layout.timestamp!r} is not a timestamp: {value!r}") from None
    try:
        ok = in_range(raw / 1000 if layout.ms else raw)
    except OverflowError:  # a JSON integer beyond float range
        ok = False
    if not ok:
        raise MalformedLineError(path, line_no, f"timestamp out of range: {value!r}")
    return raw


def _rating(value: Any, path: str, line_no: int) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        rating = float(value)
    except (TypeError, ValueError):
        raise MalformedLineError(path, line_no, f"rating is not a number: {value!r}") from None
    return finite_rating(rating, value, path, line_no)
