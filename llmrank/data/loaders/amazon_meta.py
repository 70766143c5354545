"""Amazon item metadata (``meta_*`` JSON lines, or Python dict literals in some 2018 files)
as Items: title, categories as genres, description and features as text, a few short
attributes (brand or store, main category, price, 2023 ``details``); HTML is decoded and
stripped. Fields that leak ratings (average_rating, rating_number) are never read."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Literal

from llmrank.data.lines import ErrorPolicy, LoadReport, iter_records
from llmrank.errors import MalformedLineError
from llmrank.records import Item

Version = Literal["2018", "2023"]
# a tag opens with a letter, "/", "!" or "?" after "<": "< 5 in." and "<3" are text, not markup
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_WS = re.compile(r"\s+")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
MAX_DETAILS = 6


def read_meta(path: Path, version: Version, key: str, wanted: set[str] | None, on_error: ErrorPolicy,
              report: LoadReport) -> list[Item]:
    """The Items of a metadata file, by ``key`` (else 'asin'); only ``wanted`` ids unless None.
    An exact repeat of an id is skipped silently, a different one is reported."""
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
