"""Rows of an interaction or item table (CSV / TSV, JSON lines, Parquet) as dicts keyed by
column name, each with the line (Parquet: 1-based row) number that problems are reported
under. A bad line or row is reported through the LoadReport and skipped or raised per the
error policy; reading goes on after it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from llmrank.data.lines import (
    GZIP_ERRORS,
    UTF8_BOM,
    ErrorPolicy,
    LoadReport,
    iter_records,
    open_binary,
    peek_objects,
)
from llmrank.errors import DataError, MalformedLineError

TableFormat = Literal["csv", "jsonl", "parquet"]
Row = dict[str, Any]


def table_format(path: Path) -> TableFormat | None:
    """The format a file's name says (a '.gz' suffix aside); None when it says none."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def sniff_sep(header: str) -> str:
    """The delimiter a CSV header line uses most (',' when it uses none)."""
    counts = {s: header.count(s) for s in (",", "\t", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def first_line(path: Path, encoding: str) -> str:
    """The first non-blank line (the header), without BOM or line end."""
    with open_binary(path) as fh:
        try:
            for raw in fh:
                if raw.strip():
                    return raw.removeprefix(UTF8_BOM).decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
        except GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data: {exc}") from exc
    raise DataError(f"file is empty: {path}")


def table_columns(path: Path, fmt: TableFormat, sep: str | None, encoding: str) -> list[str]:
    """Column names: the CSV header, the Parquet schema, or the keys of the first JSON records."""
    if fmt == "csv":
        header = first_line(path, encoding)
        return next(csv.reader([header], delimiter=sep or sniff_sep(header)))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
    cols: dict[str, None] = {}
    for rec in peek_objects(path, 200):
        cols.update(dict.fromkeys(rec))
    return list(cols)


def table_rows(path: Path, fmt: TableFormat, sep: str | None, encoding: str, report: LoadReport,
               on_error: ErrorPolicy) -> Iterator[tuple[int, Row]]:
    """(line number, row) of each readable row, whatever the format."""
    if fmt == "jsonl":
        yield from iter_records(path, report=report, on_error=on_error)
    elif fmt == "parquet":
        yield from _parquet_rows(path, report)
    else:
        yield from csv_rows(path, sep, encoding, report, on_error)


def csv_rows(path: Path, sep: str | None, encoding: str, report: LoadReport,
             on_error: ErrorPolicy) -> Iterator[tuple[int, Row]]:
    """Rows keyed by the header; quoted fields may span lines (the number reported is the
    row's last line); each line is decoded on its own so a bad byte costs one row."""
    sep = sep or sniff_sep(first_line(path, encoding))
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
            try:
                for line_no, raw in enumerate(fh, start=1):
                    self.line_no = line_no
                    if line_no == 1:  # a UTF-8 BOM whatever the encoding (latin-1 reads it as text)
                        raw = raw.removeprefix(UTF8_BOM)
                    try:
                        text = raw.decode(self.encoding)
                    except UnicodeDecodeError as exc:
                        self.report.problem(MalformedLineError(str(self.path), line_no,
                                                               f"not valid {self.encoding}: {exc.reason}"), self.on_error)
                        continue
                    yield text.lstrip("\ufeff") if line_no == 1 else text
            except GZIP_ERRORS as exc:  # cannot be resynchronised: report and stop, as iter_lines does
                self.line_no += 1
                self.report.problem(MalformedLineError(str(self.path), self.line_no,
                                                       f"corrupt or truncated gzip data: {exc}"), self.on_error)


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
