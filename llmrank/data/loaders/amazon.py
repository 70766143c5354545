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
import html
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, iter_records, open_binary
from llmrank.data.loaders import copy_signature
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item

log = logging.getLogger(__name__)

Version = Literal["2018", "2023"]
_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
MAX_DETAILS = 6


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
        items = _read_meta(meta, version, wanted, on_error, report)
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
        with open_binary(path) as fh:
            for _, raw in zip(range(50), fh, strict=False):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    return obj
    except (OSError, EOFError):
        return None
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
        return int(float(value)) if isinstance(value, str) else int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedLineError(path, line_no, f"{layout.timestamp!r} is not a timestamp: {value!r}") from None


def _rating(value: Any, path: str, line_no: int) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise MalformedLineError(path, line_no, f"rating is not a number: {value!r}") from None


# ---- metadata --------------------------------------------------------------------------------

def _read_meta(path: Path, version: Version, wanted: set[str] | None, on_error: ErrorPolicy,
               report: LoadReport) -> list[Item]:
    key = _LAYOUTS[version].meta_item
    items: dict[str, Item] = {}
    first_seen: dict[str, int] = {}
    for line_no, rec in iter_records(path, report=report, on_error=on_error, python_literals=True):
        iid = rec.get(key) or rec.get("asin")
        if not isinstance(iid, str) or not iid.strip():
            report.problem(MalformedLineError(str(path), line_no, f"metadata record without {key!r}"), on_error)
            continue
        iid = iid.strip()
        if wanted is not None and iid not in wanted:
            continue
        item = _item_2018(iid, rec) if version == "2018" else _item_2023(iid, rec)
        if iid in items:
            if items[iid] != item:  # exact repeats are common in the 2018 files and harmless
                report.problem(MalformedLineError(
                    str(path), line_no, f"duplicate id {iid!r} with different metadata "
                    f"(first one, line {first_seen[iid]}, kept)"), on_error)
            continue
        items[iid] = item
        first_seen[iid] = line_no
    return list(items.values())


def clean_html(value: Any) -> str:
    """Text of a metadata field: lists joined, HTML entities decoded, tags dropped."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_html(v) for v in value)
    text = html.unescape(str(value))
    return _WS.sub(" ", _TAG.sub(" ", text)).strip()


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return ()
    out: list[str] = []
    for v in value:
        s = clean_html(v)
        if s and s not in out:
            out.append(s)
    return tuple(out)


def _year(text: str) -> int | None:
    if not text or len(text) > 40:
        return None
    m = _YEAR.search(text)
    return int(m.group(1)) if m else None


def _item_2018(iid: str, rec: dict[str, Any]) -> Item:
    raw = rec.get("category")
    if raw is None:
        raw = rec.get("categories")
        if isinstance(raw, list) and raw and isinstance(raw[0], list):
            raw = raw[0]  # 2014 layout: a list of category paths
    categories = _strings(raw)
    genres = categories[1:] if len(categories) > 1 else categories
    text = " ".join(p for p in (clean_html(rec.get("description")), clean_html(rec.get("feature"))) if p)
    attrs = {k: clean_html(rec.get(src)) for k, src in (("brand", "brand"), ("main_category", "main_cat"),
                                                        ("price", "price")) if clean_html(rec.get(src))}
    return Item(iid, clean_html(rec.get("title")), _year(clean_html(rec.get("date"))), genres, (), text, attrs)


def _item_2023(iid: str, rec: dict[str, Any]) -> Item:
    text = " ".join(p for p in (clean_html(rec.get("description")), clean_html(rec.get("features"))) if p)
    attrs: dict[str, str] = {}
    for k, src in (("store", "store"), ("main_category", "main_category"), ("price", "price")):
        v = clean_html(rec.get(src))
        if v and v.lower() not in ("none", "null"):
            attrs[k] = v
    year = None
    raw_details = rec.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    for k, v in details.items():
        value = clean_html(v) if isinstance(v, (str, int, float)) else ""
        if not value:
            continue
        if "date" in k.lower():
            year = year or _year(value)
        elif len(attrs) < MAX_DETAILS and len(value) <= 60 and k not in attrs:
            attrs[clean_html(k)] = value
    return Item(iid, clean_html(rec.get("title")), year, _strings(rec.get("categories")), (), text, attrs)
