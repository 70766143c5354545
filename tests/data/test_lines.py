"""Line reading shared by every loader: policies, locations, gzip, BOM, JSON records."""

from __future__ import annotations

import gzip
import json

import pytest

from llmrank.data.lines import LoadReport, iter_lines, iter_records, require_events, split_fields
from llmrank.errors import DataError, MalformedLineError

from ._files import write


def test_iter_lines_skips_blank_lines_and_strips_bom_and_crlf(tmp_path):
    path = write(tmp_path / "a.txt", "\ufeffh\r\n\r\nx\r\n")
    report = LoadReport()
    assert list(iter_lines(path, report=report)) == [(1, "h"), (3, "x")]
    assert report.lines_read == 2 and report.files == [str(path)]


def test_skip_header_skips_the_first_non_blank_line(tmp_path):
    path = write(tmp_path / "h.csv", "\n\r\nuser,item\n1,2\n")
    report = LoadReport()
    assert list(iter_lines(path, report=report, skip_header=True)) == [(4, "1,2")]
    assert report.lines_read == 1
    bom_only = write(tmp_path / "b.csv", "\ufeff\nuser,item\n1,2\n")
    assert list(iter_lines(bom_only, report=LoadReport(), skip_header=True)) == [(3, "1,2")]


def test_gzip_is_transparent(tmp_path):
    path = write(tmp_path / "a.txt.gz", "one\ntwo\n", gz=True)
    assert [t for _, t in iter_lines(path, report=LoadReport())] == ["one", "two"]


def test_truncated_gzip_is_reported_with_location(tmp_path):
    full = gzip.compress(b"".join(b"line %d\n" % i for i in range(5000)))
    path = write(tmp_path / "t.gz", full[: len(full) // 2])
    report = LoadReport()
    lines = list(iter_lines(path, report=report, on_error="skip"))
    assert lines and report.skipped == 1 and "gzip" in report.problems[0]
    assert report.problems[0].startswith(f"{path}:{len(lines) + 1}:")
    with pytest.raises(MalformedLineError, match="gzip"):
        list(iter_lines(path, report=LoadReport(), on_error="raise"))


def test_a_plain_file_named_gz_is_not_called_empty(tmp_path):
    """Under 'skip' the error said 'file is empty' for a file full of data that is not gzip."""
    path = write(tmp_path / "reviews.json.gz", '{"a": 1}\n')
    with pytest.raises(DataError, match="gzip") as exc:
        list(iter_lines(path, report=LoadReport(), on_error="skip"))
    assert "empty" not in str(exc.value) and str(path) in str(exc.value)


def test_bad_encoding_policy(tmp_path):
    path = write(tmp_path / "b.txt", b"ok\nbad \xff byte\nok2\n")
    report = LoadReport()
    assert [t for _, t in iter_lines(path, report=report)] == ["ok", "ok2"]
    assert report.skipped == 1 and report.problems[0].startswith(f"{path}:2: not valid utf-8")
    with pytest.raises(MalformedLineError) as exc:
        list(iter_lines(path, report=LoadReport(), on_error="raise"))
    assert exc.value.line_no == 2


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="empty"):
        list(iter_lines(write(tmp_path / "e.txt", "\n\n"), report=LoadReport()))
    with pytest.raises(DataError, match="not found"):
        list(iter_lines(tmp_path / "missing.txt", report=LoadReport()))


def test_require_events_names_the_file_and_the_lines_skipped_in_it():
    require_events(1, "f", LoadReport())
    with pytest.raises(DataError, match=r"^f: no valid interactions \(it holds no data rows\)$"):
        require_events(0, "f", LoadReport())
    report = LoadReport(skipped=5)  # 2 of them in an earlier file
    with pytest.raises(DataError, match=r"^f: no valid interactions \(every data line was malformed: 3 skipped\)$"):
        require_events(0, "f", report, skipped_before=2)


def test_split_fields_counts():
    assert split_fields('1,"a, b",c', sep=",", n_fields=3, path="p", line_no=1, quoted=True) == ["1", "a, b", "c"]
    with pytest.raises(MalformedLineError, match="p:4: expected 3 fields"):
        split_fields("1,2,3,4", sep=",", n_fields=3, path="p", line_no=4)


def test_records_json_and_python_literals(tmp_path):
    path = write(tmp_path / "m.json", '{"a": 1}\n{\'a\': 2, \'b\': [\'x\']}\n{oops\n[1, 2]\n')
    report = LoadReport()
    got = list(iter_records(path, report=report, python_literals=True))
    assert got == [(1, {"a": 1}), (2, {"a": 2, "b": ["x"]})]
    assert report.skipped == 2
    assert report.problems[0].startswith(f"{path}:3: not a valid JSON record")
    assert report.problems[1].startswith(f"{path}:4: expected a JSON object")
    strict = LoadReport()
    assert [n for n, _ in iter_records(path, report=strict)] == [1]  # literals off: line 2 is bad


def test_lone_surrogates_are_replaced_and_counted(tmp_path, caplog):
    lines = [r'{"t": "Caf\u00e9 \ud83d cut", "l": ["\uDE00"], "\udc80k": 1}',
             r'{"t": "whole \ud83d\ude00 emoji"}',
             r"{'t': 'literal \ud83d'}"]
    path = write(tmp_path / "s.json", "\n".join(lines) + "\n")
    report = LoadReport()
    got = [obj for _, obj in iter_records(path, report=report, python_literals=True)]
    assert got == [{"t": "Café \ufffd cut", "l": ["\ufffd"], "\ufffdk": 1},
                   {"t": "whole \U0001f600 emoji"},  # a pair is one character, left alone
                   {"t": "literal \ufffd"}]
    assert report.repaired == 2 and report.skipped == 0
    assert "2 lines held lone UTF-16 surrogates" in caplog.text
    json.dumps(got, ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError downstream


def test_literal_eval_does_not_execute_code(tmp_path):
    path = write(tmp_path / "evil.json", "{'a': __import__('os').system('false')}\n")
    report = LoadReport()
    assert list(iter_records(path, report=report, python_literals=True)) == []
    assert report.skipped == 1


def test_report_keeps_first_problems_only():
    report = LoadReport()
    for k in range(30):
        report.problem(MalformedLineError("f", k + 1, "bad"), "skip")
    assert report.skipped == 30 and len(report.problems) == 20


def test_peek_objects_skips_non_objects_quietly_and_stops_at_the_limit(tmp_path):
    from llmrank.data.lines import peek_objects

    path = tmp_path / "x.jsonl"
    path.write_text('not json\n[1, 2]\n{"a": 1}\n{"b": 2}\n{"c": 3}\n', encoding="utf-8")
    assert list(peek_objects(path, 4)) == [{"a": 1}, {"b": 2}]
    assert list(peek_objects(path, 100)) == [{"a": 1}, {"b": 2}, {"c": 3}]
