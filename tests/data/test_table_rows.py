"""Rows of CSV / JSON lines / Parquet tables, with bad lines reported where they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.table_rows import csv_rows, sniff_sep, table_format
from llmrank.errors import DataError

from ._files import write


def test_csv_rows_blank_lines_bom_quoted_newlines_and_csv_errors(tmp_path):
    text = ("\ufeffuser,item,note\n"
            "\n"
            "u1,i1,plain\n"
            'u1,i2,"two\nlines"\n'  # reported as its last line, 5
            f"u2,i3,{'x' * 200_000}\n"  # csv.Error: field larger than the field limit
            "u2,i4,ok\n")
    path = write(tmp_path / "rows.csv", text)
    report = LoadReport()
    rows = list(csv_rows(path, None, "utf-8", report, "skip"))
    assert [(n, r["item"]) for n, r in rows] == [(3, "i1"), (5, "i2"), (7, "i4")]
    assert rows[1][1]["note"] == "two\nlines" and list(rows[0][1]) == ["user", "item", "note"]
    assert report.lines_read == 3 and report.files == [str(path)]
    assert report.skipped == 1 and report.problems[0].startswith(f"{path}:6: CSV error: field larger")
    with pytest.raises(DataError, match="file is empty"):
        list(csv_rows(write(tmp_path / "blank.csv", "\n \n"), ",", "utf-8", LoadReport(), "skip"))


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.csv", "csv"), ("a.TSV.gz", "csv"), ("a.txt", "csv"), ("a.jsonl", "jsonl"), ("a.json.gz", "jsonl"),
    ("a.ndjson", "jsonl"), ("a.parquet", "parquet"), ("a.pq", "parquet"), ("a.inter", None), ("a.gz", None),
])
def test_table_format_by_name(name, fmt):
    assert table_format(Path(name)) == fmt


@pytest.mark.parametrize(("header", "sep"), [("a,b,c", ","), ("a\tb\tc", "\t"), ("a;b;c", ";"),
                                            ("a|b", "|"), ("a\tb,c\td", "\t"), ("abc", ",")])
def test_sniff_sep(header, sep):
    assert sniff_sep(header) == sep
