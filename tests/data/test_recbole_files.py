"""The RecBole atomic-file layout: which files form a dataset, typed headers, rows."""

from __future__ import annotations

import pytest

from llmrank.data.lines import LoadReport
from llmrank.data.loaders.recbole_files import (
    Field,
    find_atomic_files,
    iter_rows,
    parse_header,
    read_header,
)
from llmrank.errors import DataError, MalformedLineError

from ._files import write

HEAD = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def test_find_atomic_files_from_folder_or_any_inter_file(tmp_path):
    for name in ("b.inter", "b.item", "b.train.inter", "b.test.inter"):
        write(tmp_path / name, HEAD)
    files = find_atomic_files(tmp_path)
    assert (files.name, files.inter, files.item, files.user) == ("b", tmp_path / "b.inter", tmp_path / "b.item", None)
    assert files.stages == {"train": tmp_path / "b.train.inter", "test": tmp_path / "b.test.inter"}
    assert find_atomic_files(tmp_path / "b.test.inter") == files


def test_find_atomic_files_errors(tmp_path):
    write(tmp_path / "two" / "a.inter", HEAD)
    write(tmp_path / "two" / "c.inter", HEAD)
    with pytest.raises(DataError, match=r"found stems \['a', 'c'\]"):
        find_atomic_files(tmp_path / "two")
    write(tmp_path / "two" / "two.inter", HEAD)  # the folder's own name wins
    assert find_atomic_files(tmp_path / "two").name == "two"
    write(tmp_path / "itemonly" / "d.item", "item_id:token\n")
    with pytest.raises(DataError, match=r"expected the \.inter files of one dataset, found stems none"):
        find_atomic_files(tmp_path / "itemonly")
    with pytest.raises(DataError, match="RecBole files not found"):
        find_atomic_files(tmp_path / "missing")


def test_parse_header_types_and_errors():
    assert parse_header(HEAD.rstrip("\n"), "f") == [Field("user_id", "token"), Field("item_id_list", "token_seq"),
                                                    Field("item_id", "token")]
    for bad in ("user_id", "user_id:int", ":token"):
        with pytest.raises(MalformedLineError, match=f"f:1: header field {bad!r}"):
            parse_header(f"{bad}\titem_id:token", "f")


def test_iter_rows_reports_bad_field_counts(tmp_path):
    path = write(tmp_path / "r.inter", HEAD + "u1\ti1 i2\ti3\nu2\ti1\n\nu3\t\ti4\n")
    report = LoadReport()
    rows = [(n, row) for n, row, _ in iter_rows(path, report, "skip")]
    assert rows == [(2, {"user_id": "u1", "item_id_list": "i1 i2", "item_id": "i3"}),
                    (5, {"user_id": "u3", "item_id_list": "", "item_id": "i4"})]
    assert report.skipped == 1 and report.problems[0].startswith(f"{path}:3: expected 3 tab-separated fields, got 2")
    assert [f.name for f in read_header(path)] == ["user_id", "item_id_list", "item_id"]
    with pytest.raises(DataError, match="file is empty"):
        read_header(write(tmp_path / "empty.inter", ""))
