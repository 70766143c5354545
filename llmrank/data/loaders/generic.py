"""Generic CSV / TSV / JSON-lines / Parquet interaction tables with a column mapping.

One row per interaction; item text fields may sit in the same table (the first row of an
item gives its text) or in a separate items table (``items_path``), which wins. Clean CSV
and Parquet files take a vectorised pyarrow path when the interactions table holds no item
text; any problem sends the load down the row-by-row path, which reports each bad row with
its file and line (for Parquet: its 1-based row number)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmrank.data.columns import EventColumns
from llmrank.data.dataset import Dataset
from llmrank.data.lines import ErrorPolicy, LoadReport, check_file, iter_records, open_binary
from llmrank.data.loaders import copy_signature
from llmrank.data.mapping import ColumnMapping
from llmrank.errors import DataError, MalformedLineError
from llmrank.records import Item

log = logging.getLogger(__name__)

TableFormat = Literal["csv", "jsonl", "parquet"]
Row = dict[str, Any]
_YEAR = re.compile(r"\b(1[5-9]\d\d|2\d\d\d)\b")
MS_THRESHOLD = 1e11  # a Unix time in seconds this large is in the year 5138: it is milliseconds
MAX_SECONDS = 253402300800.0  # 9999-12-31 (datetime's limit); beyond it a value is corrupt


def table_format(path: Path) -> TableFormat | None:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return None


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
    columns = _columns(path, fmt, sep, encoding)
    m = base.with_guesses(columns)
    m.require(str(path), columns)
    items: dict[str, Item] = {}
    fast = None if m.item_fields() or m.attributes else _fast_events(path, fmt, m, sep, encoding, report)
    if fast is not None:
        events, exact = fast
    else:
        events, exact_list = EventColumns(), []
        for line_no, row in _rows(path, fmt, sep, encoding, report, on_error):
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
    if items_path is not None:
        items.update(_read_items(Path(items_path), items_mapping, m, sep, encoding, report, on_error))
    if not len(events):
        raise DataError(f"{path}: no valid interactions")
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


# ---- row sources -----------------------------------------------------------------------------

def _sniff_sep(header: str) -> str:
    counts = {s: header.count(s) for s in (",", "\t", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def _first_line(path: Path, encoding: str) -> str:
    with open_binary(path) as fh:
        for raw in fh:
            if raw.strip():
                return raw.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    raise DataError(f"file is empty: {path}")


def _columns(path: Path, fmt: TableFormat, sep: str | None, encoding: str) -> list[str]:
    if fmt == "csv":
        header = _first_line(path, encoding)
        return next(csv.reader([header], delimiter=sep or _sniff_sep(header)))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    cols: dict[str, None] = {}
    with open_binary(path) as fh:  # a quiet peek: bad lines are reported by the real pass
        for _, raw in zip(range(200), fh, strict=False):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict):
                cols.update(dict.fromkeys(rec))
    return list(cols)


def _rows(path: Path, fmt: TableFormat, sep: str | None, encoding: str, report: LoadReport,
          on_error: ErrorPolicy) -> Iterator[tuple[int, Row]]:
    if fmt == "jsonl":
        yield from iter_records(path, report=report, on_error=on_error)
    elif fmt == "parquet":
        yield from _parquet_rows(path, report)
    else:
        yield from _csv_rows(path, sep, encoding, report, on_error)


def _csv_rows(path: Path, sep: str | None, encoding: str, report: LoadReport,
              on_error: ErrorPolicy) -> Iterator[tuple[int, Row]]:
    """Rows keyed by the header; quoted fields may span lines (the number reported is the
    row's last line); each line is decoded on its own so a bad byte costs one row."""
    sep = sep or _sniff_sep(_first_line(path, encoding))
    lines = _DecodedLines(path, encoding, report, on_error)
    report.files.append(str(path))
    header: list[str] | None = None
    for fields in _csv_records(lines, sep, report, on_error):
        if header is None:
            header = fields
            continue
        report.lines_read += 1
        if len(fields) != len(header):
            report.problem(MalformedLineError(str(path), lines.line_no, f"expected {len(header)} fields "
                                              f"separated by {sep!r}, got {len(fields)}"), on_error)
            continue
        yield lines.line_no, dict(zip(header, fields, strict=True))
    if header is None:
        raise DataError(f"file is empty: {path}")


class _DecodedLines:
    """A file's lines decoded one by one (a line that does not decode is reported and left
    out), remembering the number of the last line read: the csv reader may consume several
    lines for one row, and messages name the row's last line."""

    def __init__(self, path: Path, encoding: str, report: LoadReport, on_error: ErrorPolicy) -> None:
        self.path, self.encoding, self.report, self.on_error = path, encoding, report, on_error
        self.line_no = 0

    def __iter__(self) -> Iterator[str]:
        with open_binary(self.path) as fh:
            for line_no, raw in enumerate(fh, start=1):
                self.line_no = line_no
                try:
                    text = raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    self.report.problem(MalformedLineError(str(self.path), line_no,
                                                           f"not valid {self.encoding}: {exc.reason}"), self.on_error)
                    continue
                yield text.lstrip("\ufeff") if line_no == 1 else text


def _csv_records(lines: _DecodedLines, sep: str, report: LoadReport,
                 on_error: ErrorPolicy) -> Iterator[list[str]]:
    """The csv reader's non-blank records; a record the reader cannot parse is reported
    and skipped, and reading goes on after it."""
    reader = csv.reader(lines, delimiter=sep)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.problem(MalformedLineError(str(lines.path), lines.line_no, f"CSV error: {exc}"), on_error)
            continue
        if fields and not (len(fields) == 1 and not fields[0].strip()):
            yield fields


def _parquet_rows(path: Path, report: LoadReport) -> Iterator[tuple[int, Row]]:
    import pyarrow.parquet as pq

    report.files.append(str(path))
    row_no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        for row in batch.to_pylist():
            row_no += 1
            report.lines_read += 1
            yield row_no, row


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
        if abs(seconds) > MAX_SECONDS:  # past year 9999: a corrupt value, not a time
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
    columns = _columns(path, fmt, sep, encoding)
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
    for line_no, row in _rows(path, fmt, sep, encoding, report, on_error):
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
                parse_options=pcsv.ParseOptions(delimiter=sep or _sniff_sep(_first_line(path, encoding)),
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
    if not np.isfinite(values).all():
        return None
    if unit == "ms":
        return values / 1000
    if unit == "auto":
        return np.where(np.abs(values) > MS_THRESHOLD, values / 1000, values)
    return values


def _vector_float(col: Any) -> np.ndarray | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None  # empty ratings mean 'unrated' in the row path; keep one definition
    return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)).astype(np.float32)
