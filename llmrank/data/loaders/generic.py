"""Generic CSV / TSV / JSON-lines / Parquet interaction tables with a column mapping.

One row per interaction; item text fields may sit in the same table (the first row of an
item gives its text) or in a separate items table (``items_path``), which wins. Clean CSV
and Parquet files take a vectorised pyarrow path when the interactions table holds no item
text; any problem sends the load down the row-by-row path, which reports each bad row with
its file and line (for Parquet: its 1-based row number)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, check_file, finite_rating, require_events
from llmrank.data.loaders import copy_signature
from llmrank.data.mapping import ColumnMapping
from llmrank.data.table_rows import (
    Row,
    TableFormat,
    first_line,
    sniff_sep,
    table_columns,
    table_format,
    table_rows,
)
from llmrank.data.timestamps import MS_THRESHOLD, exact_time, in_range
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item

log = logging.getLogger(__name__)

_YEAR = re.compile(r"\b(1[5-9]\d\d|2\d\d\d)\b")


def load_table(
    path: str | Path, *, format: TableFormat | None = None,
    mapping: ColumnMapping | Mapping[str, Any] | None = None,
    items_path: str | Path | None = None, items_mapping: ColumnMapping | Mapping[str, Any] | None = None,
    sep: str | None = None, encoding: str = "utf-8", name: str | None = None,
    on_error: ErrorPolicy = "skip", report: LoadReport | None = None,
) -> Dataset:
    """Load an interaction table. Unset mapping fields are guessed from common column names
    (user_id, movieId, timestamp, rating, title, ...)."""
    path = check_file(path)
    report = report if report is not None else LoadReport()
    fmt = format or table_format(path)
    if fmt is None:
        raise DataError(f"{path}: unknown table format; pass format='csv', 'jsonl' or 'parquet'")
    base = mapping if isinstance(mapping, ColumnMapping) else ColumnMapping.from_dict(mapping)
    columns = table_columns(path, fmt, sep, encoding)
    m = base.with_guesses(columns)
    m.require(str(path), columns)
    items: dict[str, Item] = {}
    skipped_before = report.skipped
    fast = None if m.item_fields() or m.attributes else _fast_events(path, fmt, m, sep, encoding, report)
    if fast is not None:
        events, exact = fast
    else:
        events, exact_list = EventColumns(), []
        for line_no, row in table_rows(path, fmt, sep, encoding, report, on_error):
            try:
                uid, iid, t, rating = _event(row, m, str(path), line_no)
            except MalformedLineError as err:
                report.problem(err, on_error)
                continue
            events.append(uid, iid, math.floor(t), rating)
            exact_list.append(t)
            if iid not in items and (m.item_fields() or m.attributes):
                items[iid] = _item(iid, row, m)
        exact = np.asarray(exact_list, np.float64)
    require_events(len(events), path, report, skipped_before=skipped_before)
    if items_path is not None:
        items.update(_read_items(Path(items_path), items_mapping, m, sep, encoding, report, on_error))
    # within one second, sub-second precision (ms, ISO fractions) then file order decide
    n = len(exact)
    order = np.empty(n, np.int64)
    order[np.lexsort((np.arange(n), exact))] = np.arange(n)
    return Dataset.from_arrays(name or path.name.split(".")[0], items.values(), [], *events.arrays(), order)


def load_csv(path: str | Path, **kwargs: Any) -> Dataset:
    return load_table(path, format="csv", **kwargs)


def load_jsonl(path: str | Path, **kwargs: Any) -> Dataset:
    return load_table(path, format="jsonl", **kwargs)


def load_parquet(path: str | Path, **kwargs: Any) -> Dataset:
    return load_table(path, format="parquet", **kwargs)


for _wrapper in (load_csv, load_jsonl, load_parquet):
    copy_signature(_wrapper, load_table, "format")


# ---- values ----------------------------------------------------------------------------------

def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _id(value: Any, what: str, path: str, line_no: int) -> str:
    if not _present(value):
        raise MalformedLineError(path, line_no, f"empty {what} id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _event(row: Row, m: ColumnMapping, path: str, line_no: int) -> tuple[str, str, float, float | None]:
    """(user, item, exact time in seconds, rating) of one row."""
    uid = _id(row.get(m.user or ""), "user", path, line_no)
    iid = _id(row.get(m.item or ""), "item", path, line_no)
    ts = 0.0
    if m.timestamp:
        value = row.get(m.timestamp)
        if not _present(value):
            raise MalformedLineError(path, line_no, "empty timestamp")
        ts = exact_time(value, m.timestamp_unit, path, line_no)
    rating: float | None = None
    if m.rating and _present(row.get(m.rating)):
        try:
            rating = float(row[m.rating])
        except (TypeError, ValueError):
            raise MalformedLineError(path, line_no, f"rating is not a number: {row[m.rating]!r}") from None
        finite_rating(rating, row[m.rating], path, line_no)
    return uid, iid, ts, rating


def _strings(value: Any, sep: str) -> tuple[str, ...]:
    if not _present(value):
        return ()
    parts = value if isinstance(value, (list, tuple)) else str(value).split(sep)
    out: list[str] = []
    for p in parts:
        s = str(p).strip()
        if s and s not in out:
            out.append(s)
    return tuple(out)


def _item(iid: str, row: Row, m: ColumnMapping) -> Item:
    def text(col: str | None) -> str:
        v = row.get(col) if col else None
        return str(v).strip() if _present(v) else ""

    year = None
    raw_year = text(m.year)
    if raw_year:
        match = _YEAR.search(raw_year)
        year = int(match.group(1)) if match else None
    attrs = {col: text(col) for col in m.attributes if text(col)}
    return Item(iid, text(m.title), year, _strings(row.get(m.genres or ""), m.list_sep),
                _strings(row.get(m.tags or ""), m.list_sep), text(m.description), attrs)


def _read_items(path: Path, mapping: ColumnMapping | Mapping[str, Any] | None, events_mapping: ColumnMapping,
                sep: str | None, encoding: str, report: LoadReport, on_error: ErrorPolicy) -> dict[str, Item]:
    check_file(path)
    fmt = table_format(path) or "csv"
    columns = table_columns(path, fmt, sep, encoding)
    if mapping is None:
        # the item column usually has the same name in both tables
        base = ColumnMapping(item=events_mapping.item if events_mapping.item in columns else None,
                             list_sep=events_mapping.list_sep)
    else:
        base = mapping if isinstance(mapping, ColumnMapping) else ColumnMapping.from_dict(mapping)
    m = base.with_guesses(columns)
    if not m.item:
        raise DataError(f"{path}: no item column in the items table (columns: {columns})")
    items: dict[str, Item] = {}
    first: dict[str, int] = {}
    for line_no, row in table_rows(path, fmt, sep, encoding, report, on_error):
        try:
            iid = _id(row.get(m.item), "item", str(path), line_no)
            if iid in items:
                raise MalformedLineError(str(path), line_no, f"duplicate id {iid!r} (first one, line {first[iid]}, kept)")
        except MalformedLineError as err:
            report.problem(err, on_error)
            continue
        items[iid] = _item(iid, row, m)
        first[iid] = line_no
    return items


# ---- vectorised path ---------------------------------------------------------------------------

def _fast_events(path: Path, fmt: TableFormat, m: ColumnMapping, sep: str | None, encoding: str,
                 report: LoadReport) -> tuple[EventColumns, np.ndarray] | None:
    """Events from a clean CSV or Parquet file in one pass of pyarrow, or None (then the
    row-by-row path runs and reports what is wrong)."""
    import pyarrow as pa

    wanted = [c for c in (m.user, m.item, m.timestamp, m.rating) if c]
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=wanted)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            enc = "utf8" if encoding.lower().replace("-", "") == "utf8" else encoding
            table = pcsv.read_csv(
                str(path),
                read_options=pcsv.ReadOptions(encoding=enc),
                parse_options=pcsv.ParseOptions(delimiter=sep or sniff_sep(first_line(path, encoding)),
                                                newlines_in_values=False, ignore_empty_lines=True),
                convert_options=pcsv.ConvertOptions(include_columns=wanted, null_values=[""],
                                                    column_types={c: pa.string() for c in wanted}),
            )
        else:
            return None
        cols = {c: table.column(c).combine_chunks() for c in wanted}
        users = _clean_ids(cols[m.user or ""])
        items = _clean_ids(cols[m.item or ""])
        if users is None or items is None or table.num_rows == 0:
            return None
        exact = _vector_seconds(cols[m.timestamp], m.timestamp_unit) if m.timestamp else np.zeros(table.num_rows)
        rating = _vector_float(cols[m.rating]) if m.rating else np.full(table.num_rows, np.nan, np.float32)
    except (pa.ArrowException, OSError, UnicodeError, ValueError, LookupError, TypeError) as exc:
        log.debug("fast path declined %s: %s", path, exc)
        return None
    if exact is None or rating is None:
        return None
    report.files.append(str(path))
    report.lines_read += table.num_rows
    return EventColumns(users, items, np.floor(exact).astype(np.int64), rating), exact


def _clean_ids(col: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None
    if pa.types.is_floating(col.type):
        return None  # '1.0' vs '1': let the row path normalise
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    uniq = pc.unique(col)
    if not pc.all(pc.equal(pc.utf8_trim_whitespace(uniq), uniq)).as_py() or pc.any(pc.equal(uniq, "")).as_py():
        return None
    return col


def _vector_seconds(col: Any, unit: str) -> np.ndarray | None:
    """Exact times in seconds (float64), as ``exact_time`` computes them row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        micros = pc.cast(pc.cast(col, pa.timestamp("us")), pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(micros, np.float64) / 1e6
    if unit == "iso":
        return None
    values = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False))
    if unit == "ms":
        values = values / 1000
    elif unit == "auto":
        values = np.where(np.abs(values) > MS_THRESHOLD, values / 1000, values)
    return values if in_range(values) else None  # NaN, inf, past year 9999: the careful reader reports them


def _vector_float(col: Any) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None  # empty ratings mean 'unrated' in the row path; keep one definition
    values = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False))
    return None if np.isinf(values).any() else values.astype(np.float32)  # the row path reports inf
