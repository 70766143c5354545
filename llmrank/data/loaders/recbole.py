"""RecBole atomic files: ``<name>.inter``, ``<name>.item``, ``<name>.user`` with typed headers
(``user_id:token	item_id:token	rating:float	timestamp:float``; types token, token_seq,
float, float_seq), and the pre-split benchmark files ``<name>.train/.valid/.test.inter``
whose ``item_id_list:token_seq`` column holds each row's history.

Pre-split files are rebuilt into sequences by recbole_presplit.py; the file layout and
header types are read by recbole_files.py."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from llmrank.data.columns import EventColumns, read_clean_table
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, finite_rating, parse_float, require_events
from llmrank.data.loaders.recbole_files import (
    AtomicFiles,
    find_atomic_files,
    iter_rows,
    read_header,
)
from llmrank.data.loaders.recbole_presplit import load_presplit
from llmrank.data.timestamps import exact_time, in_range
from llmrank.errors import ConfigError, DataError, MalformedLineError
from llmrank.records import Item, User

log = logging.getLogger(__name__)

# RecBole's own field names for item text vary by dataset; the first present one is used
ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title", "movie_title", "name", "item_name", "book_title", "track_name"),
    "year": ("release_year", "year", "publish_year", "publication_year"),
    "genres": ("genre", "genres", "class", "categories", "category"),
    "tags": ("tags", "tag"),
    "description": ("description", "desc", "text", "plot", "overview", "summary"),
}
INTER_FIELDS = {"user": "user_id", "item": "item_id", "rating": "rating",
                "timestamp": "timestamp", "item_list": "item_id_list"}


def load_recbole(
    path: str | Path, *, name: str | None = None, on_error: ErrorPolicy = "skip",
    report: LoadReport | None = None, presplit: bool | None = None,
    mapping: Mapping[str, str] | None = None, seq_sep: str = " ",
) -> Dataset:
    """Load a RecBole dataset. Pre-split benchmark files are used when present (unless
    ``presplit=False``); ``mapping`` renames fields (keys: user, item, rating, timestamp,
    item_list, title, year, genres, tags, description)."""
    report = report if report is not None else LoadReport()
    files = find_atomic_files(Path(path))
    names = {**INTER_FIELDS, **(mapping or {})}
    use_split = bool(files.stages) if presplit is None else presplit
    _check_mapping(files, mapping or {}, use_split)
    items = _read_items(files, names, seq_sep, on_error, report)
    users = _read_users(files, names, on_error, report) if files.user else []
    if use_split and not files.stages:
        raise DataError(f"{files.name}: no pre-split .train/.valid/.test.inter files")
    if use_split:
        if files.inter is not None:
            log.info("%s: using the pre-split benchmark files, not %s", files.name, files.inter.name)
        return load_presplit(files, names, name or files.name, items, users, seq_sep, on_error, report)
    if files.inter is None:
        raise DataError(f"{files.name}: no {files.name}.inter (only pre-split files)")
    events, exact = _read_inter(files.inter, names, on_error, report)
    # RecBole orders by the float timestamp: within one second its fraction, then file order
    n = len(exact)
    order = np.empty(n, np.int64)
    order[np.lexsort((np.arange(n), exact))] = np.arange(n)
    return Dataset.from_arrays(name or files.name, items, users, *events.arrays(), order)


def _check_mapping(files: AtomicFiles, mapping: Mapping[str, str], use_split: bool) -> None:
    """A key the loader does not know, or a field it names that the files lack, is an error:
    ignored, a typo fell back to the default names and a missing rating or title field left
    every rating NaN or every title empty without a word."""
    unknown = sorted(set(mapping) - set(INTER_FIELDS) - set(ITEM_FIELDS))
    if unknown:
        raise ConfigError(f"unknown RecBole mapping keys {unknown}; valid keys: "
                          f"{[*INTER_FIELDS, *ITEM_FIELDS]}")
    if files.inter is not None and not use_split:  # pre-split rows carry no ratings or times
        _require_fields([files.inter], {k: mapping[k] for k in ("rating", "timestamp") if k in mapping})
    _require_fields([p for p in (files.item, files.text) if p is not None],
                    {k: mapping[k] for k in ITEM_FIELDS if k in mapping}, f"{files.name}.item")


def _require_fields(paths: list[Path], wanted: Mapping[str, str], absent: str = "") -> None:
    if not wanted:
        return
    fields = {f.name for p in paths for f in read_header(p)}
    missing = {k: v for k, v in wanted.items() if v not in fields}
    if missing:
        where = ", ".join(str(p) for p in paths) or f"{absent} (no such file)"
        raise DataError(f"{where}: mapped fields {missing} are not in the header (fields: {sorted(fields)})")


# ---- interactions ----------------------------------------------------------------------------

def _read_inter(path: Path, names: Mapping[str, str], on_error: ErrorPolicy,
                report: LoadReport) -> tuple[EventColumns, np.ndarray]:
    """The interactions of ``<name>.inter`` (timestamps floored to whole seconds) and their
    exact float times, which order events within a second; none at all is an error."""
    skipped_before = report.skipped
    header = read_header(path)
    by_name = {f.name: i for i, f in enumerate(header)}
    for key in ("user", "item"):
        if names[key] not in by_name:
            raise DataError(f"{path}: no {names[key]!r} field in the header (fields: {list(by_name)})")
    r_idx, t_idx = by_name.get(names["rating"]), by_name.get(names["timestamp"])
    if all(f.type in ("token", "float") for f in header):
        types = {by_name[names["user"]]: "string", by_name[names["item"]]: "string"}
        if r_idx is not None:
            types[r_idx] = "float64"
        if t_idx is not None:
            types[t_idx] = "float64"
        # a corrupt time or an infinite rating declines the fast reader; the careful reader
        # below reports its line
        fast = read_clean_table(path, sep="\t", n_fields=len(header), header=True, encoding="utf-8",
                                types=types, report=report,
                                accept=lambda cols: (t_idx is None or in_range(cols[t_idx]))
                                and (r_idx is None or not np.isinf(cols[r_idx]).any()))
        if fast is not None:
            n = len(fast[0])
            exact = np.asarray(fast[t_idx], np.float64) if t_idx is not None else np.zeros(n)
            rt = np.asarray(fast[r_idx]).astype(np.float32) if r_idx is not None else np.full(n, np.nan, np.float32)
            return EventColumns(fast[by_name[names["user"]]], fast[by_name[names["item"]]],
                                np.floor(exact).astype(np.int64), rt), exact
    events = EventColumns()
    exact_list: list[float] = []
    for line_no, row, _ in iter_rows(path, report, on_error):
        try:
            uid, iid = row[names["user"]].strip(), row[names["item"]].strip()
            if not uid or not iid:
                raise MalformedLineError(str(path), line_no, "empty user or item id")
            rating = None
            if r_idx is not None:
                raw = row[names["rating"]]
                rating = finite_rating(parse_float(raw, what="rating", path=str(path), line_no=line_no),
                                       raw, str(path), line_no)
            when = exact_time(row[names["timestamp"]], "s", str(path), line_no) if t_idx is not None else 0.0
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        events.append(uid, iid, math.floor(when), rating)
        exact_list.append(when)
    require_events(len(events), path, report, skipped_before=skipped_before)
    return events, np.asarray(exact_list, np.float64)


# ---- items and users -------------------------------------------------------------------------

def _read_items(files: AtomicFiles, names: Mapping[str, str], seq_sep: str, on_error: ErrorPolicy,
                report: LoadReport) -> list[Item]:
    fields: dict[str, dict[str, tuple[str, str]]] = {}  # item id -> field -> (type, raw)
    seen_lines: dict[str, str] = {}
    for path in (files.item, files.text):
        if path is None:
            continue
        local: set[str] = set()
        for line_no, row, header in iter_rows(path, report, on_error):
            iid = row.get(names["item"], "").strip()
            if not iid:
                report.problem(MalformedLineError(str(path), line_no, f"empty {names['item']!r}"), on_error)
                continue
            if iid in local:
                report.problem(MalformedLineError(str(path), line_no, f"duplicate id {iid!r} (first one, "
                                                  f"{seen_lines[iid]}, kept)"), on_error)
                continue
            local.add(iid)
            seen_lines.setdefault(iid, f"line {line_no}")
            slot = fields.setdefault(iid, {})
            for f in header:
                if f.name != names["item"]:
                    slot.setdefault(f.name, (f.type, row[f.name]))
    return [_item(iid, values, names, seq_sep) for iid, values in fields.items()]


def _pick(values: Mapping[str, tuple[str, str]], names: Mapping[str, str], key: str) -> str | None:
    if key in names:
        return names[key] if names[key] in values else None
    return next((c for c in ITEM_FIELDS[key] if c in values), None)


def _item(iid: str, values: Mapping[str, tuple[str, str]], names: Mapping[str, str], seq_sep: str) -> Item:
    used: set[str] = set()
    text: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for key in ITEM_FIELDS:
        col = _pick(values, names, key)
        if col is None:
            continue
        used.add(col)
        kind, raw = values[col]
        if key in ("genres", "tags"):
            lists[key] = tuple(t for t in raw.split(seq_sep) if t.strip()) if kind.endswith("_seq") else \
                tuple(t.strip() for t in raw.split("|") if t.strip())
        else:
            text[key] = " ".join(raw.split(seq_sep)).strip() if kind.endswith("_seq") else raw.strip()
    year = None
    if text.get("year"):
        try:
            year = int(float(text["year"]))
        except (ValueError, OverflowError):  # OverflowError: an infinite year ('inf')
            year = None
    attrs = {k: " ".join(v.split(seq_sep)).strip() for k, (kind, v) in values.items()
             if k not in used and v.strip()}
    return Item(iid, text.get("title", ""), year, lists.get("genres", ()), lists.get("tags", ()),
                text.get("description", ""), attrs)


def _read_users(files: AtomicFiles, names: Mapping[str, str], on_error: ErrorPolicy,
                report: LoadReport) -> list[User]:
    assert files.user is not None
    users: dict[str, User] = {}
    for line_no, row, _ in iter_rows(files.user, report, on_error):
        uid = row.get(names["user"], "").strip()
        if not uid:
            report.problem(MalformedLineError(str(files.user), line_no, f"empty {names['user']!r}"), on_error)
            continue
        if uid in users:
            report.problem(MalformedLineError(str(files.user), line_no, f"duplicate id {uid!r} (first one kept)"), on_error)
            continue
        users[uid] = User(uid, {k: v.strip() for k, v in row.items() if k != names["user"] and v.strip()})
    return list(users.values())

